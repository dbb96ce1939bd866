"""Login backoff per username: after IM_LOGIN_FREE_FAILURES failed logins for a name, each further
attempt must wait twice as long as the one before (1 s, 2 s, 4 s ...), at most IM_LOGIN_BACKOFF_MAX
seconds; a success starts over, and failures are forgotten a day after the last.

Counted in Django's cache (Redis with REDIS_URL: every process sees the same count), under a hash of
the case-folded name whether or not such a user exists, so the backoff tells nothing about which
names exist. Per-address limits are imchat/throttling.py's. A waiting attempt is refused without
looking at the password and does not count as a failure.
"""

import hashlib
import logging
import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

from imchat import outages

logger = logging.getLogger(__name__)

FORGET_AFTER = 24 * 3600
clock = time.time


def _key(username: str) -> str:
    name = (username or "").strip().casefold().encode("utf-8", "surrogatepass")
    return "login-failures:" + hashlib.sha256(name).hexdigest()


def backoff_seconds(failures: int) -> int:
    """How long the next attempt waits after this many failures in a row."""
    over = failures - settings.IM_LOGIN_FREE_FAILURES
    if over < 0:
        return 0
    return min(settings.IM_LOGIN_BACKOFF_MAX, 2 ** min(over, 32))


def login_wait(*, username: str) -> float:
    """Seconds before this name may try a password again (0: now)."""
    key = _key(username)
    try:
        state = cache.get_many([key, key + ":at"])
    except RedisError as error:
        outages.report(logger, error, "login backoff not applied: the cache cannot be reached", requests=0,
                       level=logging.WARNING)
        return 0
    failures, failed_at = state.get(key, 0), state.get(key + ":at", 0)
    return max(0.0, failed_at + backoff_seconds(failures) - clock())


def login_failed(*, username: str) -> None:
    key = _key(username)
    try:
        cache.add(key, 0, FORGET_AFTER)
        try:
            cache.incr(key)  # atomic: concurrent failures on other processes all count
        except ValueError:  # forgotten between add and incr
            cache.set(key, 1, FORGET_AFTER)
        cache.touch(key, FORGET_AFTER)
        cache.set(key + ":at", clock(), FORGET_AFTER)
    except RedisError as error:
        outages.report(logger, error, "login failure not counted: the cache cannot be reached", requests=0,
                       level=logging.WARNING)


def login_succeeded(*, username: str) -> None:
    key = _key(username)
    try:
        cache.delete_many([key, key + ":at"])
    except RedisError as error:
        outages.report(logger, error, "login failures not reset: the cache cannot be reached", requests=0,
                       level=logging.WARNING)
