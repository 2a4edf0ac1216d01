"""A real `tune` worker process whose N-th pipeline fit hangs, so a test can SIGKILL it mid-trial.

Usage: python hanging_worker.py HANG_AT_FIT tune-arguments...
"""

import runpy
import sys
import time
from pathlib import Path

from selector.study import trials

hang_at, sys.argv[1:] = int(sys.argv[1]), sys.argv[2:]
fits = 0
real_fit = trials.fit_pipeline


def fit_pipeline(*args, **kwargs):
    global fits
    fits += 1
    if fits == hang_at:
        print("HANGING", flush=True)
        time.sleep(3600)
    return real_fit(*args, **kwargs)


trials.fit_pipeline = fit_pipeline
runpy.run_path(str(Path(__file__).resolve().parents[1] / "entrypoints" / "tune.py"), run_name="__main__")
