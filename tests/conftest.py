"""Shared fixtures: every test gets its own embedding cache; the session shares one tracking store.

Tiers: ``pytest -q -m "not slow"`` runs the unit and contract tests; tests marked ``slow`` run whole
jobs (``tune``, ``register``, ``select``), ``mlflow run``, servers or real pretrained weights.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def tracking_store(tmp_path_factory):
    """A throw-away SQLite tracking store for the whole session (never the user's ./mlflow.db); created
    from inside its own folder, so its default artifact root (``./mlruns``) lands there too."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow")
    patcher = pytest.MonkeyPatch()
    patcher.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    with pytest.MonkeyPatch.context() as here:
        here.chdir(root)
        mlflow.tracking.MlflowClient().search_experiments(max_results=1)
    yield root
    patcher.undo()


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("SELECTOR_CACHE_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def journal(tmp_path, monkeypatch):
    """Each test's studies in a journal of its own: by default they would all live beside the
    session's one tracking store, and tests on the same data would resume each other's studies."""
    path = tmp_path / "optuna_journal.log"
    monkeypatch.setenv("SELECTOR_JOURNAL", str(path))
    return path


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """Run a command as a user would (``run_cli(*args, cwd=…, env={…})``), capturing its output."""
    def run(*args, cwd, env=None, timeout=600):
        return subprocess.run(args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)

    return run


@pytest.fixture(scope="session")
def wait_for() -> Callable:
    """Poll ``condition`` until it returns something truthy (which is returned) or ``timeout`` seconds
    pass (``AssertionError`` naming ``what``) — instead of sleeping past a grace period and hoping."""
    def wait(condition: Callable, timeout: float, what: str, every: float = 0.2):
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(every)

    return wait


@pytest.fixture(scope="session")
def wait_for_text() -> Callable:
    """Wait until ``text`` shows up in the log file ``path`` of the running ``process``; fails with
    the log's end when the process ends first or ``timeout`` seconds pass."""
    def wait(path: Path, text: str, process: subprocess.Popen, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in path.read_text():
            assert process.poll() is None, f"ended with {process.returncode}:\n{path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no {text!r} within {timeout:.0f} s:\n{path.read_text()[-3000:]}"
            time.sleep(0.2)

    return wait


def write_digit_pngs(root: Path, labels, per_class: int) -> Path:
    """``per_class`` of scikit-learn's digit images per label, as PNGs in one sub-folder per label."""
    from sklearn.datasets import load_digits

    from selector.stages.data import encode_png

    digits = load_digits()
    for label in labels:
        (root / str(label)).mkdir(parents=True)
        for index in np.flatnonzero(digits.target == label)[:per_class]:
            image = np.round(digits.images[index] * 255 / 16).astype(np.uint8)
            (root / str(label) / f"{index:04d}.png").write_bytes(encode_png(image))
    return root


@pytest.fixture
def digit_folder(tmp_path):
    """30 digit images (3 classes × 10) as PNGs in one sub-folder per class."""
    return write_digit_pngs(tmp_path / "digits_png", range(3), 10)


@pytest.fixture(scope="module")
def digit_pngs(tmp_path_factory):
    """120 digit images (0, 3 and 7; 40 each) as PNGs, shared by a module."""
    return write_digit_pngs(tmp_path_factory.mktemp("pngs"), (0, 3, 7), 40)
