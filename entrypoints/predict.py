"""`predict` entry point: assign every image or vector of a data set with a registered model, as a CSV."""

import sys

from selector import cli

if __name__ == "__main__":  # the options are the job's parameters (selector/jobs/predict.py)
    cli.exit_process(cli.main(["predict", *sys.argv[1:]]))
