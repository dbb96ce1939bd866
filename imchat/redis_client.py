"""Every Redis connection of the server is made here, from REDIS_URL: one Redis, or a Sentinel group.

`redis://...` (or `rediss://`, `unix://`) names one Redis. `redis+sentinel://` names the Sentinels
that watch a master: `redis+sentinel://[:password@]host:port[,host:port...]/<master name>[/<db>]`.
Each connection asks the Sentinels where the master is when it connects. Sentinel names a new master
at once, but demotes a live old one (a SENTINEL FAILOVER for maintenance) only ~10 s later, its INFO
period: meanwhile the old master still takes writes, and they are lost. So each pool asks the
Sentinels again at most once a second (`MASTER_CHECK_SECONDS`, on a command's way out); when the
master moved it drops every connection to the old one, as Sentinel's CLIENT KILL would, and counts
the move (`master_moves`): presence and the channel layer then write their state again, for what
went to the old master meanwhile. redis-py retries a command cut that way on a new connection. The
password is the data nodes'; the Sentinels are reached without one. The channel layer (imchat/layers.py), presence
(chat/presence.py), the shared rate limits (chat/throttling.py) and the cache that holds the HTTP
rate-limit counters (`CachePool`) all come through here.
"""

import functools
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE

SENTINEL_SCHEME = "redis+sentinel"
# A Sentinel that does not answer is skipped for the next one within a second.
SENTINEL_FORM = f"{SENTINEL_SCHEME}://[:password@]host:port[,host:port...]/<master name>[/<db>]"
SENTINEL_OPTIONS = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
MASTER_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: list[tuple[str, int]]
    master: str
    db: int = 0
    password: str | None = None
    username: str | None = None

    @property
    def data_options(self) -> dict:
        return {"db": self.db, "password": self.password, "username": self.username}


def sentinel_target(url: str) -> SentinelTarget | None:
    """What a `redis+sentinel://` URL names; None for a plain Redis URL; ValueError if malformed."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        return None
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    sentinels = []
    for host in filter(None, hosts.split(",")):
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit():
            raise ValueError(f"{host!r} is not host:port; expected {SENTINEL_FORM}")
        sentinels.append((name.strip("[]"), int(port)))
    path = [part for part in parts.path.split("/") if part]
    if not sentinels or not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(f"expected {SENTINEL_FORM} (the URL is not repeated: it may hold a password)")
    return SentinelTarget(sentinels, unquote(path[0]), int(path[1]) if len(path) == 2 else 0,
                          unquote(password) or None, unquote(username) or None)


class _MasterWatch:
    """When the pool last asked the Sentinels, and how often the master moved since it was made."""

    checked = 0.0
    moves = 0

    def _check_due(self) -> bool:
        now = time.monotonic()
        if now - self.checked < MASTER_CHECK_SECONDS:
            return False
        self.checked = now
        return True

    def _moved(self, before, after) -> bool:
        if before is None or after == before:
            return False
        self.moves += 1
        return True


class SentinelPool(_MasterWatch, redis.sentinel.SentinelConnectionPool):
    def get_connection(self, *args, **kwargs):
        if self._check_due():
            before = self.master_address
            try:
                if self._moved(before, self.get_master_address()):
                    self.disconnect(inuse_connections=True)
            except redis.ConnectionError:  # no Sentinel answers: keep the master we know
                pass
        return super().get_connection(*args, **kwargs)


class AsyncSentinelPool(_MasterWatch, redis.asyncio.sentinel.SentinelConnectionPool):
    async def get_connection(self, *args, **kwargs):
        if self._check_due():
            before = self.master_address
            try:
                if self._moved(before, await self.get_master_address()):
                    await self.disconnect(inuse_connections=True)
            except redis.ConnectionError:
                pass
        return await super().get_connection(*args, **kwargs)


def master_moves(client: redis.Redis | redis.asyncio.Redis) -> int:
    """How often the client's master has moved (always 0 without Sentinel)."""
    return getattr(client.connection_pool, "moves", 0)


def sync_pool(url: str, **options) -> redis.ConnectionPool:
    return _pool(url, options, redis.ConnectionPool, redis.sentinel.Sentinel, SentinelPool)


def async_pool(url: str, **options) -> redis.asyncio.ConnectionPool:
    pool = _pool(url, options, redis.asyncio.ConnectionPool, redis.asyncio.sentinel.Sentinel, AsyncSentinelPool)
    if HIREDIS_AVAILABLE:  # a requirement; without it redis-py's Python packer still works
        pool.connection_class = _packed_by_hiredis(pool.connection_class)
    return pool


@functools.cache
def _packed_by_hiredis(connection_class: type) -> type:
    """The connection class, its commands packed by hiredis in C, as redis-py's sync client does:
    its asyncio client packs in Python, ~74 µs for the channel layer's script call with 64 keys
    (hiredis: ~8 µs)."""
    packer = HiredisRespSerializer()

    class HiredisPacked(connection_class):
        def pack_command(self, *args):
            return packer.pack(*args)

    HiredisPacked.__name__ = f"HiredisPacked{connection_class.__name__}"
    return HiredisPacked


def _pool(url: str, options: dict, plain, sentinel_class, sentinel_pool):
    target = sentinel_target(url)
    if target is None:
        return plain.from_url(url, **options)
    sentinel = sentinel_class(target.sentinels, sentinel_kwargs=SENTINEL_OPTIONS)
    return sentinel_pool(target.master, sentinel, **target.data_options, **options)


def sync_client(url: str, **options) -> redis.Redis:
    return redis.Redis(connection_pool=sync_pool(url, **options))


def async_client(url: str, **options) -> redis.asyncio.Redis:
    return redis.asyncio.Redis(connection_pool=async_pool(url, **options))


class CachePool(redis.ConnectionPool):
    """Django's Redis cache builds its pools with `pool_class.from_url`: this one follows Sentinel too."""

    @classmethod
    def from_url(cls, url: str, **options) -> redis.ConnectionPool:
        return sync_pool(url, **options)
