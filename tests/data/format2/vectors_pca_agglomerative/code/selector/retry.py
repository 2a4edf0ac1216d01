"""Riding out a database that goes away for a moment (PostgreSQL restarting, a failover): calls to
Optuna's RDB storage and to MLflow's client that fail because the connection is gone are retried
with back-off for up to ``SELECTOR_RETRY_SECONDS`` (120); any other error is raised at once.

A tracking *server* needs nothing from here: MLflow's REST client already retries refused
connections and 5xx answers with back-off."""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any, Callable

logger = logging.getLogger(__name__)


def retry_seconds() -> float:
    return float(os.environ.get("SELECTOR_RETRY_SECONDS", 120))


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database connection failed — not the request."""
    import sqlalchemy

    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, sqlalchemy.exc.OperationalError) or \
                (isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def call(function: Callable, *args, what: str = "", **kwargs) -> Any:
    """``function(*args, **kwargs)``, retried while it fails with a transient database error."""
    deadline, delay, warned = time.monotonic() + retry_seconds(), 0.5, False
    while True:
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            if not transient(exc) or time.monotonic() + delay > deadline:
                raise
            if not warned:
                logger.warning("the database did not answer %s (%s); retrying for up to %.0f s",
                               what or getattr(function, "__name__", "a call"), type(exc).__name__, retry_seconds())
                warned = True
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


class RetryingClient:
    """``MlflowClient`` whose calls ride out a moment without the tracking database."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute
        return functools.partial(call, attribute, what=f"MLflow {name}")


def client(*args, **kwargs) -> RetryingClient:
    import mlflow

    # Making the client opens the store (a database store connects and checks its schema): retried too.
    return RetryingClient(call(mlflow.tracking.MlflowClient, *args, what="MLflow's tracking store", **kwargs))


def retrying_rdb_storage(*args, **kwargs):
    """Optuna's ``RDBStorage`` (``pool_pre_ping`` on, so connections a restart closed are replaced)
    whose every storage call is retried through a moment without the database. A state update that
    reached the database before its connection broke is not applied twice: the retry that finds the
    trial already finished counts as done."""
    engine_kwargs = {"pool_pre_ping": True, **kwargs.pop("engine_kwargs", {})}
    # Making it connects (tables, version check): a worker that joins during a restart waits too.
    return call(_retrying_rdb_class(), *args, what="Optuna's storage", engine_kwargs=engine_kwargs, **kwargs)


@functools.lru_cache(maxsize=1)
def _retrying_rdb_class() -> type:
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.storages import RDBStorage

    def wrap(name: str, method: Callable) -> Callable:
        @functools.wraps(method)
        def wrapped(self, *args, **kwargs):
            attempts = 0

            def once():
                nonlocal attempts
                attempts += 1
                try:
                    return method(self, *args, **kwargs)
                except UpdateFinishedTrialError:
                    if attempts > 1 and name == "set_trial_state_values":
                        return True
                    raise

            return call(once, what=f"Optuna {name}")

        return wrapped

    # The public storage API, and the private calls Optuna's cache in front of it makes.
    cached = ("_create_new_trial", "_set_trial_param", "_get_best_trial_id", "_get_trials", "_get_stale_trial_ids")
    methods = {name: wrap(name, method) for name, method in vars(RDBStorage).items()
               if callable(method) and (not name.startswith("_") or name in cached)
               and name not in ("remove_session", "upgrade")}
    return type("RetryingRDBStorage", (RDBStorage,), {**methods, "__module__": __name__})
