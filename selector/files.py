"""Writing files so that no reader, and no crash, ever leaves half of one behind; and cache files that
are checked before they are read, so a truncated or corrupted one is recomputed, never taken for data.

``unreadable(path, exc)`` is how a cache says so: a warning for a damaged file, a quiet note for one an
older version wrote without a digest."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

logger = logging.getLogger(__name__)


class CorruptFile(ValueError):
    """A cache file whose bytes do not match the digest written beside it."""


class UncheckedFile(CorruptFile):
    """A cache file with no digest beside it: written by a version before digests (or cut off before it)."""


def write_atomic(path: Path, write: Callable[[BinaryIO], None], digest: bool = False) -> None:
    """Write through ``write`` into a temporary file beside ``path``, then rename it into place.
    ``digest``: also write ``<path>.sha256``, which ``read_verified`` checks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        if digest:
            # The digest goes in first: a crash between the two renames leaves a mismatch, which reads as corrupt.
            value = sha256(Path(tmp))
            write_atomic(_digest_path(path), lambda handle: handle.write(value.encode()))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_verified(path: Path) -> bytes:
    """The bytes of ``path`` if they match ``<path>.sha256``; ``CorruptFile`` otherwise."""
    data = path.read_bytes()
    try:
        expected = _digest_path(path).read_text().strip()
    except OSError:
        raise UncheckedFile(f"{path} has no digest beside it (written by an older version, or cut off)") from None
    if hashlib.sha256(data).hexdigest() != expected:
        raise CorruptFile(f"{path} does not match its digest (truncated or corrupted)")
    return data


def write_cache(path: Path, write: Callable[[BinaryIO], None]) -> bool:
    """``write_atomic`` with a digest, for a cache: a folder that cannot be written (no permission, a
    full disk) costs the cache, not the job — one warning, and ``False``."""
    try:
        write_atomic(path, write, digest=True)
        return True
    except OSError as exc:
        logger.warning("cannot write the cache file %s (%s); going on without caching it. Set SELECTOR_CACHE_DIR "
                       "to a writable folder to keep results between runs.", path, exc.strerror or exc)
        return False


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_output(output: str) -> str:
    """``output`` (stripped) once the folder it goes in exists; a URI (``s3a://…``, ``hdfs://…``) is left to
    whoever writes it."""
    text = str(output).strip()
    parent = Path(text).expanduser().parent
    if "://" not in text and not parent.is_dir():
        raise ValueError(f"`output` {output!r}: folder {str(parent)!r} does not exist.")
    return text


def unreadable(path: Path, exc: Exception) -> None:
    """Log that the cache file ``path`` is recomputed because reading it raised ``exc``."""
    if isinstance(exc, UncheckedFile):
        logger.debug("recomputing %s: %s", path, exc)
    else:
        logger.warning("ignoring unreadable cache file %s (%s); recomputing", path, exc)
