"""`embed` entry point: compute (or reuse cached) embeddings and log them."""

import sys

from selector import cli

if __name__ == "__main__":  # the options are the job's parameters (selector/jobs/embed.py)
    cli.exit_process(cli.main(["embed", *sys.argv[1:]]))
