"""`register` entry point: log a study's best pipeline as a pyfunc model, register it, promote it if better."""

import sys

from selector import cli

if __name__ == "__main__":  # the options are the job's parameters (selector/jobs/register.py)
    cli.exit_process(cli.main(["register", *sys.argv[1:]]))
