"""Shared fixtures: every test gets its own embedding cache; the session shares one tracking store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def tracking_store(tmp_path_factory):
    """A throw-away SQLite tracking store for the whole session (never the user's ./mlflow.db)."""
    root = tmp_path_factory.mktemp("mlflow")
    patcher = pytest.MonkeyPatch()
    patcher.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    yield root
    patcher.undo()


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("SELECTOR_CACHE_DIR", str(path))
    return path


from selector.data import encode_png as png_bytes  # noqa: E402  (re-exported for the tests)


@pytest.fixture
def digit_folder(tmp_path):
    """30 digit images (3 classes × 10) as PNGs in one sub-folder per class."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path / "digits_png"
    for label in range(3):
        (root / str(label)).mkdir(parents=True)
        picks = np.flatnonzero(digits.target == label)[:10]
        for index in picks:
            image = np.round(digits.images[index] * 255 / 16).astype(np.uint8)
            (root / str(label) / f"{index:04d}.png").write_bytes(png_bytes(image))
    return root
