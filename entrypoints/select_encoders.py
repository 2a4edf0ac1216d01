"""`select` entry point: tune every encoder, register the best label-free (not select.py: that name
would shadow the standard library's `select` module for scripts in this folder)."""

from selector import cli
from selector.jobs.select import select_job

if __name__ == "__main__":
    cli.exit_process(cli.run(select_job, cli.parser(__doc__, dataset=str, encoders=str, n_trials=int, model_name=str,
                                                        objective=str, workers=int, labels=str)))
