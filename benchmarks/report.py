"""Where benchmark results go: ``docs/benchmarks/<name>.md``, written by the script that measured them.

Every file opens with what a reader needs to weigh the numbers: the command, the git commit (and
whether the tree had uncommitted changes), the date, and the machine (cores, CPU model, memory, GPU).
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def commit() -> str:
    head = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return f"{head}{' (with uncommitted changes)' if dirty else ''}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    except Exception:  # a broken torch install must not cost the benchmark its record
        pass
    return "none"


def memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError, AttributeError):
        return float("nan")


def machine() -> str:
    from selector.machine import available_cores

    return (f"{available_cores()} cores ({os.cpu_count()} on the machine), {cpu_model()}, "
            f"{memory_gib():.0f} GiB memory, GPU: {gpu()}")


def header(title: str, argv: list[str] | None = None) -> str:
    command = "python " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv))
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"# {title}\n\n"
            f"- command: `{command}`\n- commit: {commit()}\n- date: {date}\n- machine: {machine()}\n")


def write(name: str, title: str, body: str, argv: list[str] | None = None, folder: Path | None = None) -> Path:
    """``docs/benchmarks/<name>.md`` (or ``folder/<name>.md``): the header, then ``body`` (Markdown)."""
    folder = Path(os.environ.get("SELECTOR_BENCHMARK_DOCS") or folder or DOCS)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    path.write_text(header(title, argv) + "\n" + body.rstrip() + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return path


class _Tee:
    """Everything printed goes to the terminal and into the record."""

    def __init__(self, stream):
        self.stream, self.parts = stream, []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def run(main, title: str) -> None:
    """Run a benchmark's ``main()`` and write what it printed to ``docs/benchmarks/<name>.md`` under
    the header. ``--record NAME`` (taken out of the command line before ``main`` parses it) names the
    file; the default is the script's name. ``--record -`` writes nothing."""
    argv = list(sys.argv)
    name = Path(argv[0]).stem
    if "--record" in argv[1:]:
        at = argv.index("--record", 1)
        name = argv[at + 1]
        del sys.argv[at:at + 2]
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    try:
        main()
    finally:
        sys.stdout = tee.stream
    if name != "-":
        write(name, title, "```\n" + "".join(tee.parts).strip("\n") + "\n```" if _plain(tee.parts)
              else "".join(tee.parts), argv=argv)


def _plain(parts: list[str]) -> bool:
    """Output with no Markdown table in it is shown as it printed (a code block)."""
    return not any(line.startswith("|") for line in "".join(parts).splitlines())
