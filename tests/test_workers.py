"""The pieces ``tune``'s worker processes share (``selector.workers``)."""

import multiprocessing

import numba
import pytest

from selector.workers import Tickets, cores_share


def _take_all(path, taken):
    tickets = Tickets(path)
    mine = 0
    while tickets.take():
        mine += 1
    taken.put(mine)


def test_processes_taking_tickets_together_take_each_exactly_once(tmp_path):
    total, processes = 500, 4
    Tickets(tmp_path / "tickets", total)
    taken = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_take_all, args=(tmp_path / "tickets", taken)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    counts = [taken.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert sum(counts) == total
    assert not Tickets(tmp_path / "tickets").take()  # none left


def test_no_tickets_means_no_trial(tmp_path):
    assert not Tickets(tmp_path / "tickets", 0).take()


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="one numba thread here: nothing to limit")
def test_a_cores_share_limits_numba_and_gives_the_threads_back():
    before = numba.get_num_threads()
    with cores_share(1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
