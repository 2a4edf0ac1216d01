"""The `tune` job: one Optuna study for one (data set, encoder), a parent MLflow run and a nested run per trial."""

from __future__ import annotations

import time

from selector.stages.objective import DEFAULT_OBJECTIVE
from selector.study.runner import StudyOutcome as TuneResult  # noqa: F401  (what tune_job returns)


def tune_job(dataset: str = "digits", encoder: str = "raw", checkpoint: str = "", n_trials: int = 30,
             timeout: float = 0.0, seed: int = 0, clusterers: str = "all", study_name: str = "",
             storage: str = "", objective: str = DEFAULT_OBJECTIVE, workers: int = 0,
             labels: str = "auto", reproducible: bool = False) -> TuneResult:
    """One Optuna study for one (data set, encoder): a parent MLflow run and a nested run per trial.

    ``objective`` is the registered label-free objective the study maximises; ``workers`` processes
    on this machine run the ``n_trials`` (0 = its cores, at most one per trial; 1 = this process);
    ``labels`` (``auto``, ``none`` or a CSV of ``id,label``) are what AMI is reported against — never
    what chooses; ``reproducible``: several workers run the trials in batches asked of one sampler, so a
    seeded study gives the same trials every time (each batch waits for its slowest trial).
    """
    import contextlib

    from selector.study.runner import run_study, worker_pool
    from selector.study.session import check_workers

    started = time.perf_counter()
    # The other workers start first and import while this process imports, checks the request and
    # embeds; once they have the job, the first of them creates the tracking store's tables while this
    # process builds the evaluation space.
    pool = None if reproducible else worker_pool(check_workers(workers, n_trials, storage), n_trials)
    with pool or contextlib.nullcontext():
        from selector.study.request import StudyRequest

        request = StudyRequest.resolve(dataset, encoder, checkpoint, n_trials, timeout, seed, clusterers, study_name,
                                       storage, objective, workers, labels=labels, reproducible=reproducible)
        return run_study(request, tracking=True, pool=pool, started=started)

