"""Redis or PostgreSQL going away: a few clear log lines per outage, not a traceback per request.

Every place that catches a failure hands it to `report`. A failure that is a dependency being
unreachable (a refused or dropped connection, not a bug) is counted against that dependency: the
first one logs "redis unavailable (...)", later ones only count, a reminder comes at most every
`IM_OUTAGE_REMINDER_SECONDS`, and the first success after it logs "redis back after X s, N requests
failed". Anything else is logged as before, with its traceback. Outages and failed requests are
also counted in the metrics (imchat/metrics.py).
"""

import logging
import threading
import time

import psycopg
import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.db.backends.signals import connection_created

from imchat import metrics

logger = logging.getLogger("imchat.outages")

# PostgreSQL's SQLSTATEs that mean the server went away (class 08: connection exception; 57P01-03:
# shut down, crashed, or not accepting connections yet). Other OperationalErrors (a statement
# timeout, a deadlock) are the request's own failure and keep their traceback.
_SERVER_GONE_STATES = ("57P01", "57P02", "57P03")


class Dependency:
    """One dependency's state in this process: up, or down since when and how many failed meanwhile."""

    def __init__(self, name: str, *, clock=time.monotonic):
        self.name = name
        self.clock = clock
        self.down_since: float | None = None
        self.failed = 0
        self.reminded_at = 0.0
        self._lock = threading.Lock()
        self._up = metrics.DEPENDENCY_UP.labels(name)
        self._up.set(1)
        self._outages = metrics.DEPENDENCY_OUTAGES.labels(name)
        self._failures = metrics.DEPENDENCY_FAILURES.labels(name)

    def failure(self, error: BaseException, what: str, *, requests: int = 1) -> None:
        """`requests` requests (0: a background task) failed because this dependency is unreachable."""
        self._failures.inc(requests)
        now = self.clock()
        with self._lock:
            self.failed += requests
            if self.down_since is None:
                self.down_since = self.reminded_at = now
                self._up.set(0)
                self._outages.inc()
                logger.error("%s unavailable: %s (%s: %s); until it is back, failures are counted, not logged",
                             self.name, what, type(error).__name__, _first_line(error))
                return
            if now - self.reminded_at < settings.IM_OUTAGE_REMINDER_SECONDS:
                return
            self.reminded_at = now
            down_for, failed = now - self.down_since, self.failed
        logger.error("%s still unavailable after %.0f s, %d requests failed so far (%s: %s)",
                     self.name, down_for, failed, type(error).__name__, _first_line(error))

    def success(self) -> None:
        """The dependency answered: if it was down, say it is back. Free while it is up."""
        if self.down_since is None:
            return
        with self._lock:
            if self.down_since is None:
                return
            down_for, failed = self.clock() - self.down_since, self.failed
            self.down_since, self.failed = None, 0
            self._up.set(1)
        logger.warning("%s back after %.1f s, %d requests failed meanwhile", self.name, down_for, failed)

    @property
    def up(self) -> bool:
        return self.down_since is None


REDIS = Dependency("redis")
DATABASE = Dependency("database")


def _database_connected(sender, connection, **kwargs) -> None:
    """After an outage Django drops the broken connection; a new one is the database back."""
    DATABASE.success()


connection_created.connect(_database_connected, dispatch_uid="imchat.outages")


def dependency_of(error: BaseException) -> Dependency | None:
    """The dependency whose absence `error` is, or None when it is some other failure."""
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):
        return REDIS
    if isinstance(error, OperationalError | InterfaceError | psycopg.OperationalError | psycopg.InterfaceError):
        cause = error if isinstance(error, psycopg.Error) else error.__cause__
        if isinstance(cause, psycopg.Error):
            state = cause.sqlstate
            if state is None or state.startswith("08") or state in _SERVER_GONE_STATES:
                return DATABASE
        elif isinstance(error, InterfaceError):  # Django's "connection already closed"
            return DATABASE
    return None


def report(log: logging.Logger, error: BaseException, what: str, *args, requests: int = 1,
           level: int = logging.ERROR) -> None:
    """A caught failure: counted against its dependency when one is unreachable, else logged at
    `level` with its traceback (`what % args` says what was being done)."""
    dependency = dependency_of(error)
    if dependency is not None:
        dependency.failure(error, what % args if args else what, requests=requests)
    else:
        log.log(level, what, *args, exc_info=error)


class OutageFilter(logging.Filter):
    """On the console handler: a record whose traceback is an unreachable dependency, logged by code
    that is not ours (Django's "Internal Server Error" for an HTTP request, daphne's "Exception inside
    application"), is counted against that outage instead of written."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        dependency = dependency_of(error) if error is not None else None
        if dependency is None:
            return True
        dependency.failure(error, record.getMessage())
        return False


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else "no detail"
