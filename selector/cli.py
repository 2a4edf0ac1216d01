"""The command line: ``selector <entry point> --option value …``, and what every entry-point script shares.

Each entry point's options come from its job's signature (``selector/jobs/<entry point>.py``): names,
types and defaults are written there once; MLproject mirrors them (a test keeps the three equal both
ways), so the parsers use ``argparse.SUPPRESS`` and pass only what was given.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import sys
import typing
from typing import Callable


def parser(entry_point: str, job: Callable) -> argparse.ArgumentParser:
    """The parser of ``selector <entry_point>``: one ``--name`` option per parameter of ``job``
    (``--snake-case`` too), typed from its annotation; a parameter without a default is required."""
    summary, _, details = (inspect.getdoc(job) or "").partition("\n\n")
    result = argparse.ArgumentParser(prog=f"selector {entry_point}", description=summary, epilog=details or None,
                                     argument_default=argparse.SUPPRESS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(job)
    for name, param in inspect.signature(job).parameters.items():
        kind = hints.get(name, str)
        flags = sorted({f"--{name}", f"--{name.replace('_', '-')}"})
        required = param.default is inspect.Parameter.empty
        result.add_argument(*flags, dest=name, type=_boolean if kind is bool else kind, required=required,
                            metavar=kind.__name__.upper(),
                            help="required" if required else f"default: {param.default!r}")
    return result


def main(argv: list[str] | None = None) -> int:
    """``selector <entry point> [--option value …]``; ``selector --help`` lists the entry points."""
    from selector import __version__
    from selector.jobs import ENTRY_POINTS, job

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: selector {{{','.join(ENTRY_POINTS)}}} [--option value ...]\n\n"
              "Find, track and serve the best way to cluster an image data set without labels. The entry points "
              "are MLproject's (`mlflow run . -e NAME -P option=value` runs the same job); `selector NAME --help` "
              "lists each one's options.\n")
        for name in ENTRY_POINTS:
            print(f"  {name:<9} {ENTRY_POINT_SUMMARIES[name]}")
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"selector {__version__}")
        return 0
    if argv[0] not in ENTRY_POINTS:
        print(f"error: unknown entry point {argv[0]!r}; valid: {', '.join(ENTRY_POINTS)}.", file=sys.stderr)
        return 2
    chosen = job(argv[0])
    return run(chosen, parser(argv[0], chosen), argv[1:])


# One line each for ``selector --help``, without importing every job (each pulls in MLflow, torch, …).
ENTRY_POINT_SUMMARIES = {
    "embed": "compute (or reuse cached) embeddings of a data set and log them",
    "tune": "one Optuna study over reduce→cluster pipelines, tracked in MLflow",
    "register": "register a study's chosen pipeline; move the alias only to a better one",
    "select": "tune every encoder and register the best, chosen without labels",
    "main": "embed → tune per encoder → register the best as champion → one test request",
    "predict": "assign every image or vector of a data set with a registered model",
}


def console() -> None:
    """The ``selector`` console script."""
    exit_process(main())


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

    # What the interpreter does first when it exits: its thread-exit hooks (they tell idle thread pools,
    # such as MLflow's artifact downloads, to stop), then join the other non-daemon threads.
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
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
        # selector's own reads of logged artifacts (the champion's model, the studies' tables for the
        # report) are not downloads the user asked for: no progress bar for each.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
