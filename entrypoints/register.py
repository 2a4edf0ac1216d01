"""`register` entry point: log a study's best pipeline as a pyfunc model, register it, promote it if better."""

from selector import cli
from selector.jobs.register import register_job

if __name__ == "__main__":
    cli.exit_process(cli.run(register_job, cli.parser(__doc__, study_run_id=str, model_name=str, alias=str, force=bool,
                                                    trial=str)))
