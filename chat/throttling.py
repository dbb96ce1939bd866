"""Token buckets for socket requests: per connection, per user in this process, and per user
across every process (settled with Redis once per tick, never a round trip per frame).
"""

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from weakref import WeakKeyDictionary

import redis.asyncio
from django.conf import settings

from imchat import outages, redis_client

logger = logging.getLogger(__name__)


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


# One script call settles every user of a tick: refill each shared bucket to now, take what this
# process let through, and answer how long each user in debt must wait (a string: Lua numbers
# come back as truncated integers).
_SETTLE_SCRIPT = """
local rate, burst, now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local waits = {}
for i, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'tokens', 'stamp')
  local tokens = tonumber(state[1]) or burst
  local stamp = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate) - tonumber(ARGV[4 + i])
  redis.call('HSET', key, 'tokens', tokens, 'stamp', math.max(now, stamp))
  redis.call('EXPIRE', key, ttl)
  waits[i] = tostring(tokens < 0 and -tokens / rate or 0)
end
return waits
"""


class SharedUserBudget:
    """IM_USER_RATE_LIMIT for a user across all processes.

    Each process counts what its sockets let through and, once per tick, settles the counts of all
    its users in one script call; a user whose shared bucket went into debt is refused on this
    process until the debt is paid. Between ticks the per-process bucket still holds, so N
    processes overshoot by at most one tick's worth each, and the debt takes it back.
    """

    def __init__(self, client: "redis.asyncio.Redis", prefix: str, *, rate: float, burst: float,
                 tick: float = 0.1, clock: Callable[[], float] = time.time):
        self.client, self.prefix = client, prefix
        self.rate, self.burst, self.tick, self.clock = rate, burst, tick, clock
        self.pending: Counter[int] = Counter()
        self.blocked_until: dict[int, float] = {}
        self.script = client.register_script(_SETTLE_SCRIPT)
        self.worker: asyncio.Task | None = None

    def take(self, user_id: int) -> float:
        """0 if the user may go on; else the seconds until they may (no I/O)."""
        until = self.blocked_until.get(user_id)
        if until is not None:
            wait = until - self.clock()
            if wait > 0:
                return wait
            del self.blocked_until[user_id]
        self.pending[user_id] += 1
        if self.worker is None:
            self.worker = asyncio.ensure_future(self._settle_soon())
        return 0.0

    async def _settle_soon(self) -> None:
        try:
            await asyncio.sleep(self.tick)
            await self.settle()
        finally:
            self.worker = None
            if self.pending:  # counted while settling: the next tick takes them
                self.worker = asyncio.ensure_future(self._settle_soon())

    async def settle(self) -> None:
        counts, self.pending = self.pending, Counter()
        if not counts:
            return
        now = self.clock()
        keys = [f"{self.prefix}:rate:user:{user_id}" for user_id in counts]
        ttl = int(self.burst / self.rate) + 60
        try:
            waits = await self.script(keys=keys, args=[self.rate, self.burst, now, ttl, *counts.values()])
        except redis.RedisError as error:  # the per-process limits still hold meanwhile
            outages.report(logger, error, "settling shared rate limits (per-process limits hold meanwhile)",
                           requests=0, level=logging.WARNING)
            return
        outages.REDIS.success()
        for user_id, wait in zip(counts, waits):
            wait = float(wait)
            if wait > 0:
                self.blocked_until[user_id] = now + wait


class NoSharedBudget:
    """One process (no REDIS_URL): the per-process user bucket is the whole budget."""

    def take(self, user_id: int) -> float:
        return 0.0


_budgets: "WeakKeyDictionary[asyncio.AbstractEventLoop, SharedUserBudget | NoSharedBudget]" = WeakKeyDictionary()


def shared_user_budget() -> SharedUserBudget | NoSharedBudget:
    """This event loop's view of the cross-process user budget."""
    loop = asyncio.get_running_loop()
    budget = _budgets.get(loop)
    if budget is None:
        if settings.REDIS_URL:
            client = redis_client.async_client(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
            budget = SharedUserBudget(client, settings.IM_REDIS_PREFIX, rate=settings.IM_USER_RATE_LIMIT,
                                      burst=settings.IM_USER_RATE_LIMIT * 2)
        else:
            budget = NoSharedBudget()
        _budgets[loop] = budget
    return budget
