"""MLflow plumbing shared by every job: where to track, how to log flat params and batched metrics."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Mapping

import mlflow
from mlflow.entities import Metric, Param, RunTag

from selector import retry

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_DB = "mlflow.db"
_PASSWORD_IN_URL = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]+):(?P<password>[^@/\s]*)@")


def configure_tracking() -> str:
    """Honour ``MLFLOW_TRACKING_URI``; otherwise use ``sqlite:///mlflow.db`` in the working directory."""
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri(f"sqlite:///{Path.cwd() / DEFAULT_TRACKING_DB}")
    return mlflow.get_tracking_uri()


def import_store_code() -> None:
    """Import what opening a database tracking store imports (MLflow's SQLAlchemy store and alembic,
    ~0.5–0.8 s) — outside the set-up lock, which the first worker holds while it creates the store:
    each process then holds the lock for the database work alone, and imports while it waits."""
    import importlib

    scheme = configure_tracking().split(":", 1)[0].split("+", 1)[0]
    if scheme in ("sqlite", "postgresql", "mysql", "mssql"):
        for module in ("alembic.command", "mlflow.store.tracking.sqlalchemy_store"):
            importlib.import_module(module)


def mask_url(text: str) -> str:
    """Hide the password of any ``scheme://user:password@host`` URL inside ``text``."""
    return _PASSWORD_IN_URL.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))


def warn_if_password_logged(name: str, value: str) -> None:
    """selector masks passwords in what it logs, but ``mlflow run`` logs entry-point parameters itself,
    verbatim, before any project code runs. Say so, and how to keep the password out of the URL."""
    if mask_url(value) != value and os.environ.get("MLFLOW_RUN_ID"):
        logger.warning(
            "`%s` carries a password. selector masks it (%s), but `mlflow run` has logged -P parameters "
            "verbatim. Leave the password out of the URL: PostgreSQL reads PGPASSWORD or ~/.pgpass.",
            name, mask_url(value))


def _value(value: Any) -> str:
    return mask_url(str(value))[:6000]


def log_batch(params: Mapping[str, Any] | None = None, metrics: Mapping[str, float] | None = None,
              tags: Mapping[str, Any] | None = None, run_id: str | None = None, step: int = 0,
              new_run: bool = False) -> None:
    """One round trip for everything; None values are left out and URLs are masked.

    Params the run already has are skipped: ``mlflow run`` logs the entry point's parameters itself
    (an empty string as ``''``), and MLflow refuses to change a param. ``new_run``: the caller just
    created the run, so it has none and that lookup (a round trip per trial) is saved.
    """
    import time

    client = retry.client()
    run_id = run_id or mlflow.active_run().info.run_id
    now = int(time.time() * 1000)
    existing = client.get_run(run_id).data.params if params and not new_run else {}
    client.log_batch(
        run_id,
        params=[Param(k, _value(v)) for k, v in (params or {}).items() if v is not None and k not in existing],
        metrics=[Metric(k, float(v), now, step) for k, v in (metrics or {}).items() if v is not None],
        tags=[RunTag(k, _value(v)) for k, v in (tags or {}).items() if v is not None],
    )


class TrialRuns:
    """The study's trials as nested MLflow runs under its parent run: a ``search.TrialObserver``.

    Each trial gets a run named ``trial-N`` when its parameters are drawn (its id kept on the Optuna
    trial as ``mlflow_run_id``, which ``register`` follows), then its params (``base_params`` beside the
    pipeline's), metrics and tags in one batch, and an end state: FINISHED (scored or declined), FAILED,
    or KILLED when interrupted."""

    def __init__(self, experiment_id: str, parent_run_id: str, base_params: Mapping[str, Any] | None = None,
                 worker_run_id: str = ""):
        self.experiment_id, self.parent_run_id, self.worker_run_id = experiment_id, parent_run_id, worker_run_id
        self.base_params = dict(base_params or {})
        self._runs: dict[int, tuple[str, dict]] = {}  # trial number → (run id, params to log)

    def started(self, trial, params: dict) -> None:
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

        run = retry.client().create_run(self.experiment_id, tags={
            MLFLOW_PARENT_RUN_ID: self.parent_run_id, MLFLOW_RUN_NAME: f"trial-{trial.number}",
            "optuna_trial_number": str(trial.number), "optuna_study_name": trial.study.study_name})
        trial.set_user_attr("mlflow_run_id", run.info.run_id)
        if self.worker_run_id:
            trial.set_user_attr("worker_run_id", self.worker_run_id)
        self._runs[trial.number] = (run.info.run_id, {**self.base_params, **params})

    def _end(self, trial, status: str, metrics: Mapping | None = None, tags: Mapping | None = None) -> None:
        run_id, params = self._runs[trial.number]
        # Forgotten once logged: a failed log goes on to ``failed``, which still needs the run.
        log_batch(params=params, metrics=metrics, tags=tags, run_id=run_id, new_run=True)
        del self._runs[trial.number]
        retry.client().set_terminated(run_id, status=status)

    def finished(self, trial, result) -> None:
        self._end(trial, "FINISHED", result.metrics, result.tags)

    def declined(self, trial, params: dict, reason: str) -> None:
        self._end(trial, "FINISHED", tags={"declined": reason})

    def failed(self, trial, params: dict, error: Exception) -> None:
        if trial.number in self._runs:
            self._end(trial, "FAILED", tags={"error": f"{type(error).__name__}: {error}"})

    def interrupted(self, trial) -> None:
        if trial.number in self._runs:
            run_id, _ = self._runs.pop(trial.number)
            client = retry.client()
            client.set_tag(run_id, "error", "interrupted (Ctrl-C or SIGTERM) during the trial")
            client.set_terminated(run_id, status="KILLED")
