"""Locks between processes: an exclusive ``flock`` on a file, or a PostgreSQL advisory lock.

Every lock selector takes goes through here: a study's set-up (``study.study_lock``), registering and
moving an alias (``registry.promote.promotion_lock``), a reduction several workers need at once
(``reduction.ReductionCache``) and the trial tickets of one command's processes (``workers.Tickets``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def file_lock(path: str | Path, mode: str = "a") -> Iterator[IO]:
    """Hold an exclusive ``flock`` on ``path`` (opened with ``mode``; ``"a"`` creates it) until the block
    ends, and hand the open file to the block. A process that dies lets go with its file descriptors."""
    import fcntl

    with open(path, mode) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def advisory_lock(url: str, key: int) -> Iterator[None]:
    """Hold PostgreSQL's session advisory lock ``key`` on the database at ``url`` until the block ends
    (its own connection, closed after; the server lets go if this process dies)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()
