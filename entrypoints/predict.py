"""`predict` entry point: assign every image or vector of a data set with a registered model, as a CSV."""

from selector import cli
from selector.jobs.predict import predict_job

if __name__ == "__main__":
    cli.exit_process(cli.run(predict_job, cli.parser(__doc__, model_uri=str, dataset=str, output=str, batch_size=int)))
