"""`select` entry point: tune every encoder, register the best label-free (not select.py: that name
would shadow the standard library's `select` module for scripts in this folder)."""

import sys

from selector import cli

if __name__ == "__main__":  # the options are the job's parameters (selector/jobs/select.py)
    cli.exit_process(cli.main(["select", *sys.argv[1:]]))
