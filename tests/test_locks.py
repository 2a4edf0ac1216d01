"""The one lock helper: another process cannot take the lock while it is held, and can after."""

import subprocess
import sys

from selector.locks import file_lock

PROBE = ("import fcntl, sys\nhandle = open(sys.argv[1], 'a')\n"
         "fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)")  # raises at once when the lock is held


def test_a_file_lock_excludes_another_process_until_the_block_ends(tmp_path):
    path = tmp_path / "setup.lock"
    probe = [sys.executable, "-c", PROBE, str(path)]
    with file_lock(path) as handle:
        assert handle.name == str(path)
        assert subprocess.run(probe, capture_output=True).returncode != 0
    assert subprocess.run(probe, capture_output=True).returncode == 0


def test_a_file_lock_hands_the_open_file_to_the_block(tmp_path):
    path = tmp_path / "tickets"
    path.write_text("0 3")
    with file_lock(path, "r+") as handle:
        taken, total = map(int, handle.read().split())
        handle.seek(0)
        handle.write(f"{taken + 1} {total}")
        handle.truncate()
    assert path.read_text() == "1 3"
