"""What every entry-point script shares: argument parsing without defaults of its own, and clean exits.

Defaults live in the library's function signatures (and the MLproject file mirrors them; a test
keeps the two equal), so parsers use ``argparse.SUPPRESS`` and pass only what was given.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable


def parser(description: str, **arguments: type) -> argparse.ArgumentParser:
    """A parser with one ``--name`` option per keyword (``snake_case`` also accepted as ``--snake-case``)."""
    result = argparse.ArgumentParser(description=description, argument_default=argparse.SUPPRESS)
    for name, kind in arguments.items():
        flags = {f"--{name}", f"--{name.replace('_', '-')}"}
        result.add_argument(*sorted(flags), dest=name, type=_boolean if kind is bool else kind)
    return result


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "y", "on"):
        return True
    if lowered in ("0", "false", "no", "n", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false; got {text!r}")


def run(job: Callable, parsed: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Call ``job`` with the parsed options; user errors end in one readable line and exit code 2."""
    configure_output()
    options = vars(parsed.parse_args(argv))
    stop_on_sigterm()
    try:
        job(**options)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the running trial and its runs are marked KILLED; run the same command again to "
              "resume the study.", file=sys.stderr)
        return 130
    return 0


def exit_process(code: int) -> None:
    """End this process with ``code`` the quick way: other threads joined, exit handlers run (MLflow's
    included), output flushed — then no module-by-module teardown of the interpreter, which takes about
    a second once MLflow, numba and scikit-learn are loaded: a second of every command, and of every
    worker process a ``tune`` waits for."""
    import atexit
    import os
    import threading

    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or a broken pipe: nothing more can be said
            pass
    os._exit(code)


def stop_on_sigterm() -> None:
    """SIGTERM (``kill``, a scheduler, ``mlflow run`` being stopped) ends a job as Ctrl-C does — the
    running trial is FAIL in Optuna and KILLED in MLflow, worker processes are stopped — instead of
    leaving them RUNNING."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def configure_output() -> None:
    """One line per stage from selector; libraries' INFO chatter only with ``SELECTOR_VERBOSE=1``."""
    from selector.quiet import verbose

    logging.basicConfig(level=logging.INFO if verbose() else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("selector").setLevel(logging.INFO)
    logging.getLogger("registry").setLevel(logging.INFO)
    if not verbose():  # MLflow sets up its own INFO handler ("Validating input example …")
        logging.getLogger("mlflow").setLevel(logging.WARNING)
