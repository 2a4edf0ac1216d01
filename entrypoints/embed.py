"""`embed` entry point: compute (or reuse cached) embeddings and log them."""

from selector import cli
from selector.jobs.embed import embed_job

if __name__ == "__main__":
    cli.exit_process(cli.run(embed_job, cli.parser(
        __doc__, dataset=str, encoder=str, checkpoint=str, batch_size=int, image_size=int, device=str, labels=str)))
