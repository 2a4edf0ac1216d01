"""selector: find, track and serve the best way to cluster an image data set without labels.

From Python::

    import selector
    result = selector.search("photos/", encoder="efficientnet_lite0", n_trials=30)
    result.labels_, result.confidence_, result.report("report.html"), result.register("my-photos")

``selector.search`` runs one study, ``selector.select`` compares encoders, ``selector.AutoCluster``
is the same search as a scikit-learn estimator. The package is laid out by stage
(``selector.stages``), study (``selector.study``), jobs (``selector.jobs``, one per entry point) and
``registry`` (the served model) beside it.
"""

import importlib
import importlib.abc
import importlib.util
import os
import sys

from selector.cache import cache_path

# UMAP JIT-compiles with numba on first use (~15 s); a persistent cache keeps that to once per
# machine instead of once per process. Set before numba is imported anywhere, under the one cache root.
os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_path("numba")))

__version__ = "0.1.0"

# Where modules lived before the package had sub-packages. Registered models pickle classes by their
# module path (``selector.pipeline.FittedPipeline``, ``selector.clustering.ClusterModel``, …), and
# their own copy of ``registry/model.py`` imports ``selector.encoders`` and ``selector.data``: the old
# names stay importable, as the very modules that replaced them.
MOVED = {
    **{f"selector.{name}": f"selector.stages.{name}" for name in (
        "data", "encoders", "checkpoints", "embedding", "reduction", "neighbours", "sampling", "clustering",
        "propagation", "compiled", "objective", "probe", "pipeline")},
    **{f"selector.{name}": f"selector.study.{name}" for name in (
        "workers", "alternatives", "tracking", "reports", "report_html")},
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module path as the module that lives at its new one (one module object, two names)."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        pass


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())

_API = {"search": "selector.api", "select": "selector.api", "SearchResult": "selector.api",
        "SelectResult": "selector.api", "AutoCluster": "selector.estimator"}


def __getattr__(name):
    # The API imports scikit-learn, Optuna and MLflow: ``import selector`` alone stays quick.
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'selector' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
