"""Token buckets for socket requests: per connection, and per user within this process.

The per-user bucket is per process: with N processes behind a balancer a user's devices can reach
N times the user rate at most, still bounded, at no cost on the hot path (no Redis round trip).
"""

import threading
import time
from dataclasses import dataclass, field

from django.conf import settings


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self):
        if self.tokens < 0:
            self.tokens = self.burst

    def take(self, now: float | None = None) -> float:
        """0 if a request may pass now; else the seconds until one may."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class UserBuckets:
    """One bucket per user in this process, dropped when the user's last socket here closes."""

    def __init__(self):
        self._lock = threading.Lock()
        self._buckets: dict[int, tuple[TokenBucket, int]] = {}

    def acquire(self, user_id: int) -> TokenBucket:
        with self._lock:
            bucket, sockets = self._buckets.get(user_id, (None, 0))
            if bucket is None:
                bucket = TokenBucket(settings.IM_USER_RATE_LIMIT, settings.IM_USER_RATE_LIMIT * 2)
            self._buckets[user_id] = (bucket, sockets + 1)
            return bucket

    def release(self, user_id: int) -> None:
        with self._lock:
            bucket, sockets = self._buckets.get(user_id, (None, 0))
            if sockets <= 1:
                self._buckets.pop(user_id, None)
            else:
                self._buckets[user_id] = (bucket, sockets - 1)


user_buckets = UserBuckets()


def connection_bucket() -> TokenBucket:
    return TokenBucket(settings.IM_RATE_LIMIT, settings.IM_RATE_BURST)
