"""`tune` entry point: one Optuna study over clustering pipelines, every trial tracked in MLflow."""

from selector import cli
from selector.jobs.tune import tune_job

if __name__ == "__main__":
    cli.exit_process(cli.run(tune_job, cli.parser(
        __doc__, dataset=str, encoder=str, checkpoint=str, n_trials=int, timeout=float, seed=int,
        clusterers=str, study_name=str, storage=str, objective=str, workers=int, labels=str)))
