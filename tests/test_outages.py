"""Redis or PostgreSQL away: one line when it goes, a rare reminder, one line when it is back with how
many requests failed; counted in the metrics. Other failures keep their traceback."""

import logging
import sqlite3

import psycopg
import pytest
import redis
from django.db import InterfaceError, OperationalError
from prometheus_client import REGISTRY

from imchat import outages


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def metric(name: str, dependency: str) -> float:
    return REGISTRY.get_sample_value(name, {"dependency": dependency}) or 0.0


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.INFO, logger="imchat.outages")
    return lambda: [record.getMessage() for record in caplog.records if record.name == "imchat.outages"]


def wrapped(cause: Exception, wrapper=OperationalError) -> Exception:
    """As Django raises it: its own error type, the driver's error as the cause."""
    error = wrapper(str(cause))
    error.__cause__ = cause
    return error


def test_an_outage_is_one_line_when_it_goes_a_rare_reminder_and_one_line_when_it_is_back(lines, settings):
    settings.IM_OUTAGE_REMINDER_SECONDS = 30
    clock = Clock()
    cache = outages.Dependency("cache-under-test", clock=clock)
    refused = redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    outages_before = metric("imchat_dependency_outages_total", "cache-under-test")

    for _ in range(500):
        cache.failure(refused, "storing a message")
    clock.now += 10
    cache.failure(refused, "storing a message", requests=3)
    assert not cache.up and metric("imchat_dependency_up", "cache-under-test") == 0
    clock.now += 25  # 35 s in: one reminder
    for _ in range(100):
        cache.failure(refused, "storing a message")
    cache.success()
    cache.success()

    assert lines() == [
        "cache-under-test unavailable: storing a message (ConnectionError: Error 111 connecting to 127.0.0.1:6379. "
        "Connection refused.); until it is back, failures are counted, not logged",
        "cache-under-test still unavailable after 35 s, 504 requests failed so far (ConnectionError: Error 111 "
        "connecting to 127.0.0.1:6379. Connection refused.)",
        "cache-under-test back after 35.0 s, 603 requests failed meanwhile",
    ]
    assert cache.up and metric("imchat_dependency_up", "cache-under-test") == 1
    assert metric("imchat_dependency_outages_total", "cache-under-test") == outages_before + 1
    assert metric("imchat_dependency_failures_total", "cache-under-test") == 603


def test_a_second_outage_is_counted_and_said_again(lines):
    cache = outages.Dependency("flaky-under-test", clock=Clock())
    for _ in range(2):
        cache.failure(redis.TimeoutError("Timeout reading from socket"), "a push")
        cache.success()

    assert len(lines()) == 4
    assert metric("imchat_dependency_outages_total", "flaky-under-test") == 2


def test_only_an_unreachable_dependency_counts_as_an_outage():
    refused = psycopg.OperationalError("connection failed: connection to server at \"127.0.0.1\", port 5432 "
                                       "failed: Connection refused")
    timeout = psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
    deadlock = psycopg.errors.DeadlockDetected("deadlock detected")

    assert outages.dependency_of(redis.ConnectionError("refused")) is outages.REDIS
    assert outages.dependency_of(redis.TimeoutError("timeout")) is outages.REDIS
    assert outages.dependency_of(wrapped(refused)) is outages.DATABASE
    assert outages.dependency_of(refused) is outages.DATABASE
    assert outages.dependency_of(wrapped(psycopg.errors.AdminShutdown("terminating connection"))) is outages.DATABASE
    assert outages.dependency_of(InterfaceError("connection already closed")) is outages.DATABASE
    assert outages.dependency_of(wrapped(timeout)) is None  # the request's own failure
    assert outages.dependency_of(wrapped(deadlock)) is None
    assert outages.dependency_of(wrapped(sqlite3.OperationalError("database is locked"))) is None
    assert outages.dependency_of(redis.ResponseError("WRONGTYPE")) is None
    assert outages.dependency_of(ValueError("a bug")) is None


def test_any_other_failure_is_logged_with_its_traceback(caplog):
    log = logging.getLogger("tests.outages")
    try:
        raise KeyError("a bug")
    except KeyError as error:
        outages.report(log, error, "storing a message failed for user %s", 7)

    [record] = [r for r in caplog.records if r.name == "tests.outages"]
    assert record.levelno == logging.ERROR and record.getMessage() == "storing a message failed for user 7"
    assert record.exc_info[0] is KeyError


def test_the_database_is_back_when_django_opens_a_connection_again(lines):
    from django.db import connection
    from django.db.backends.signals import connection_created

    outages.DATABASE.failure(wrapped(psycopg.OperationalError("Connection refused")), "a batch")
    try:
        # what Django sends once it has connected (the broken connection was dropped after the error)
        connection_created.send(sender=type(connection), connection=connection)

        assert outages.DATABASE.up
        assert lines()[-1].startswith("database back after ") and lines()[-1].endswith(", 1 requests failed meanwhile")
    finally:
        outages.DATABASE.success()


def test_a_traceback_of_an_outage_logged_by_django_or_daphne_is_counted_instead_of_written():
    refused = wrapped(psycopg.OperationalError("Connection refused"))
    failed = metric("imchat_dependency_failures_total", "database")
    keep = outages.OutageFilter()

    def record(error: Exception | None) -> logging.LogRecord:
        info = (type(error), error, None) if error is not None else None
        return logging.LogRecord("django.request", logging.ERROR, __file__, 1, "Internal Server Error: %s",
                                 ("/api/v1/me/",), info)

    try:
        assert keep.filter(record(refused)) is False
        assert keep.filter(record(KeyError("a bug"))) is True
        assert keep.filter(record(None)) is True
        assert metric("imchat_dependency_failures_total", "database") == failed + 1
    finally:
        outages.DATABASE.success()
