"""`tune` entry point: one Optuna study over clustering pipelines, every trial tracked in MLflow."""

import sys

from selector import cli

if __name__ == "__main__":  # the options are the job's parameters (selector/jobs/tune.py)
    cli.exit_process(cli.main(["tune", *sys.argv[1:]]))
