"""The jobs behind the MLproject entry points: ``selector/jobs/<entry point>.py`` holds the job of
that entry point (``<entry point>_job``) and nothing else does. Their signatures hold the defaults
(MLproject mirrors them; a test keeps the two equal)."""

from __future__ import annotations

import importlib
from typing import Callable

ENTRY_POINTS = ("embed", "tune", "register", "select", "main", "predict")


def job(entry_point: str) -> Callable:
    """The job behind ``entry_point``, imported only when asked for (each pulls in what it needs)."""
    if entry_point not in ENTRY_POINTS:
        raise ValueError(f"unknown entry point {entry_point!r}; valid: {', '.join(ENTRY_POINTS)}.")
    return getattr(importlib.import_module(f"selector.jobs.{entry_point}"), f"{entry_point}_job")
