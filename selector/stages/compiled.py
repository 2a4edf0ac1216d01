"""umap-learn's numba functions, compiled once per machine instead of once in every process."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def cache_umap_compilation() -> int:
    """Turn numba's on-disk cache (``$NUMBA_CACHE_DIR``) on for umap-learn's jitted functions before
    their first call; returns how many. umap-learn compiles about sixteen of them without it — 5–11 s
    of every process that fits a UMAP (a `tune` worker, `register`), measured on this 2-core machine —
    while numba keys each cached entry on its source file, so a new umap-learn recompiles."""
    import umap.layouts
    import umap.spectral
    import umap.umap_
    import umap.utils
    from numba.core.registry import CPUDispatcher

    enabled = 0
    for module in (umap.umap_, umap.layouts, umap.utils, umap.spectral):
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher) and type(getattr(value, "_cache", None)).__name__ == "NullCache":
                value.enable_caching()
                enabled += 1
    return enabled
