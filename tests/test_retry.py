"""Riding out a moment without the database, without a database: fakes that fail as a restart does."""

import pytest
import sqlalchemy

from selector import retry


def lost_connection() -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))


class Flaky:
    """Fails with ``error`` the first ``failures`` calls, then answers."""

    def __init__(self, failures: int, error=lost_connection):
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self, value):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error()
        return value * 2


@pytest.fixture
def sleeps(monkeypatch):
    """No real waiting: a clock that moves only when the code sleeps; the sleeps are recorded."""
    waited, now = [], [1000.0]

    def sleep(seconds):
        waited.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(retry.time, "sleep", sleep)
    monkeypatch.setattr(retry.time, "monotonic", lambda: now[0])
    return waited


def test_a_call_that_loses_its_connection_twice_is_retried_with_back_off_and_answers(sleeps):
    flaky = Flaky(2)
    assert retry.call(flaky, 21, what="a test call") == 42
    assert flaky.calls == 3 and sleeps == [0.5, 1.0]


def test_an_error_of_the_request_itself_is_raised_at_once(sleeps):
    flaky = Flaky(1, error=lambda: ValueError("no such run"))
    with pytest.raises(ValueError, match="no such run"):
        retry.call(flaky, 1)
    assert flaky.calls == 1 and sleeps == []


def test_a_lost_connection_behind_another_error_counts_and_the_deadline_ends_the_retries(sleeps, monkeypatch):
    def wrapped():
        try:
            raise lost_connection()
        except sqlalchemy.exc.OperationalError as exc:
            raise RuntimeError("MLflow could not reach its store") from exc

    assert retry.transient(_raised(wrapped)) and not retry.transient(ValueError("bad request"))
    monkeypatch.setenv("SELECTOR_RETRY_SECONDS", "20")
    flaky = Flaky(100, error=wrapped)
    with pytest.raises(RuntimeError, match="could not reach"):
        retry.call(flaky, 1)
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 8.0] and flaky.calls == 6  # the next wait (10 s) would pass 20 s


def test_the_retrying_client_retries_every_method_and_passes_attributes_through(sleeps):
    class Store:
        tracking_uri = "sqlite:///x.db"

        def __init__(self):
            self.get_run = Flaky(2)

    client = retry.RetryingClient(Store())
    assert client.get_run(5) == 10 and client.tracking_uri == "sqlite:///x.db" and sleeps == [0.5, 1.0]


def _raised(function) -> BaseException:
    try:
        function()
    except BaseException as exc:  # the exception as the caller meets it
        return exc
    raise AssertionError("did not raise")
