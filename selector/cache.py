"""The one cache root: ``$SELECTOR_CACHE_DIR``, else ``~/.cache/selector`` (shared by every project on
the machine). Embeddings, reductions and numba's compiled code each have a folder under it."""

from __future__ import annotations

import os
from pathlib import Path

ENV = "SELECTOR_CACHE_DIR"


def cache_root() -> Path:
    return Path(os.environ.get(ENV) or Path.home() / ".cache" / "selector")


def cache_path(kind: str) -> Path:
    """The folder of one kind of cached file: ``embeddings``, ``reductions``, ``numba``."""
    return cache_root() / kind
