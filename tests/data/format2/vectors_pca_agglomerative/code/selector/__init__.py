"""selector: find, track and serve the best way to cluster an image data set without labels."""

import os
from pathlib import Path

# UMAP JIT-compiles with numba on first use (~15 s); a persistent cache keeps that to once per
# machine instead of once per process. Set before numba is imported anywhere.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "selector" / "numba"))

__version__ = "0.1.0"
