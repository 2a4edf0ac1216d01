"""`main` entry point: select on the data set, register the champion, and ask it about a few images."""

import sys

from selector import cli

if __name__ == "__main__":  # the options are the job's parameters (selector/jobs/main.py)
    cli.exit_process(cli.main(["main", *sys.argv[1:]]))
