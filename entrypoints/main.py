"""`main` entry point: select on the data set, register the champion, and ask it about a few images."""

from selector import cli
from selector.jobs.main import main_job

if __name__ == "__main__":
    cli.exit_process(cli.run(main_job, cli.parser(__doc__, dataset=str, encoders=str, n_trials=int, model_name=str,
                                                      objective=str, workers=int, labels=str)))
