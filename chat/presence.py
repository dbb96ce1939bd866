"""Who has a live socket, across server processes, surviving a killed process.

With REDIS_URL each user has a hash `socket channel -> process id`, and each server process keeps
a short-lived liveness key alive from a background thread. A socket counts only while its process
key exists, so a killed process's sockets stop counting within IM_PRESENCE_TTL seconds without
any clean disconnect. Without Redis the same questions are answered for this process alone.
"""

import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from functools import cache

import redis
from django.conf import settings

from imchat import outages, redis_client

logger = logging.getLogger(__name__)

PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LocalPresence:
    """One process: counts sockets in memory."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sockets: dict[int, set[str]] = defaultdict(set)
        self._last_seen: dict[int, float] = {}

    def connected(self, user_id: int, channel_name: str) -> int:
        with self._lock:
            self._sockets[user_id].add(channel_name)
            return len(self._sockets[user_id])

    def disconnected(self, user_id: int, channel_name: str) -> int:
        with self._lock:
            sockets = self._sockets.get(user_id, set())
            sockets.discard(channel_name)
            if not sockets:
                self._sockets.pop(user_id, None)
                self._last_seen[user_id] = time.time()
            return len(sockets)

    def online(self, user_ids: Iterable[int]) -> set[int]:
        with self._lock:
            return {uid for uid in user_ids if self._sockets.get(uid)}

    def offline(self, user_ids: Iterable[int]) -> set[int]:
        with self._lock:
            return {uid for uid in user_ids if not self._sockets.get(uid)}

    def local_user_ids(self) -> set[int]:
        """The users with a socket on this process."""
        with self._lock:
            return set(self._sockets)

    def socket_count(self, user_id: int) -> int:
        with self._lock:
            return len(self._sockets.get(user_id, ()))

    def last_seen(self, user_id: int) -> float | None:
        with self._lock:
            return time.time() if self._sockets.get(user_id) else self._last_seen.get(user_id)


class RedisPresence:
    """All processes sharing one Redis."""

    def __init__(self, url: str, prefix: str):
        self.redis = redis_client.sync_client(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
        self.prefix = prefix
        self._heartbeat_started = False
        self._lock = threading.Lock()
        # This process's own sockets, to write back after Redis lost them (a restart without
        # persistence) and to retry removals that failed while it was away.
        self._local: dict[str, int] = {}
        self._unremoved: dict[str, int] = {}
        # Removals of the last seconds, done again after a Sentinel failover: the old master may
        # have taken them in the second before this process noticed (imchat/redis_client.py).
        self._removed: dict[str, tuple[int, float]] = {}
        self._resync = False
        self._master_moves = 0

    def _user_key(self, user_id: int) -> str:
        return f"{self.prefix}:presence:user:{user_id}"

    def _seen_key(self, user_id: int) -> str:
        return f"{self.prefix}:presence:seen:{user_id}"

    def _process_key(self, process_id: str) -> str:
        return f"{self.prefix}:presence:process:{process_id}"

    def _start_heartbeat(self) -> None:
        with self._lock:
            if self._heartbeat_started:
                return
            self._heartbeat_started = True
        self._beat()
        threading.Thread(target=self._heartbeat_loop, name="presence-heartbeat", daemon=True).start()

    def _beats_key(self) -> str:
        return f"{self.prefix}:presence:last-beat"

    def _beat(self) -> None:
        now = time.time()
        pipe = self.redis.pipeline()
        pipe.set(self._process_key(PROCESS_ID), now, ex=settings.IM_PRESENCE_TTL, get=True)
        # Kept after the process dies: when its sockets are found dead, their users were last
        # seen at this process's last beat, not when they connected.
        pipe.hset(self._beats_key(), PROCESS_ID, now)
        previous_beat = pipe.execute()[0]
        moves = redis_client.master_moves(self.redis)
        with self._lock:
            local, unremoved = dict(self._local), dict(self._unremoved)
            self._unremoved.clear()
            resync, self._resync = self._resync or previous_beat is None, False
            self._removed = {channel: (user_id, at) for channel, (user_id, at) in self._removed.items()
                             if at > now - 5}
            if moves != self._master_moves:
                self._master_moves, resync = moves, True
                unremoved.update({channel: user_id for channel, (user_id, _) in self._removed.items()})
        if resync and local:  # Redis forgot us (restarted, or we stalled past the TTL), or missed a connect
            pipe = self.redis.pipeline()
            for channel, user_id in local.items():
                pipe.hset(self._user_key(user_id), channel, PROCESS_ID)
            pipe.execute()
        if unremoved:
            pipe = self.redis.pipeline()
            for channel, user_id in unremoved.items():
                pipe.hdel(self._user_key(user_id), channel)
            pipe.execute()

    def _heartbeat_loop(self) -> None:
        beats = 0
        while True:
            time.sleep(settings.IM_PRESENCE_REFRESH_SECONDS)
            try:
                self._beat()
                outages.REDIS.success()
                beats += 1
                if beats % 720 == 0:
                    self._forget_old_processes()
            except redis.RedisError as error:
                outages.report(logger, error, "presence heartbeat", requests=0, level=logging.WARNING)

    def _forget_old_processes(self, older_than: float = 86400) -> None:
        """Last beats of processes gone for a day serve no one any more."""
        cutoff = time.time() - older_than
        old = [proc for proc, beat in self.redis.hgetall(self._beats_key()).items() if float(beat) < cutoff]
        if old:
            self.redis.hdel(self._beats_key(), *old)

    def connected(self, user_id: int, channel_name: str) -> int:
        self._start_heartbeat()
        with self._lock:
            self._local[channel_name] = user_id
        pipe = self.redis.pipeline()
        pipe.hset(self._user_key(user_id), channel_name, PROCESS_ID)
        pipe.set(self._seen_key(user_id), time.time())
        pipe.hlen(self._user_key(user_id))
        try:
            return pipe.execute()[-1]
        except redis.RedisError as error:
            outages.report(logger, error, "presence unavailable at connect of %s; writing it later", user_id,
                           level=logging.WARNING)
            self._resync = True
            return 1

    def local_user_ids(self) -> set[int]:
        """The users with a socket on this process."""
        with self._lock:
            return set(self._local.values())

    def disconnected(self, user_id: int, channel_name: str) -> int:
        with self._lock:
            self._local.pop(channel_name, None)
            self._removed[channel_name] = (user_id, time.time())
        pipe = self.redis.pipeline()
        pipe.hdel(self._user_key(user_id), channel_name)
        pipe.set(self._seen_key(user_id), time.time())
        pipe.hlen(self._user_key(user_id))
        try:
            return pipe.execute()[-1]
        except redis.RedisError as error:
            outages.report(logger, error, "presence unavailable at disconnect of %s; retrying later", user_id,
                           level=logging.WARNING)
            with self._lock:
                self._unremoved[channel_name] = user_id
            return 0

    def _live_sockets(self, user_ids: list[int]) -> dict[int, int]:
        pipe = self.redis.pipeline()
        for uid in user_ids:
            pipe.hgetall(self._user_key(uid))
        sockets_by_user = dict(zip(user_ids, pipe.execute()))
        processes = {proc for sockets in sockets_by_user.values() for proc in sockets.values()}
        if not processes:
            return {}
        processes = sorted(processes)
        pipe = self.redis.pipeline()
        for proc in processes:
            pipe.exists(self._process_key(proc.decode()))
        alive = {proc for proc, exists in zip(processes, pipe.execute()) if exists}
        live: dict[int, int] = {}
        dead_by_user: dict[int, list] = {}
        for uid, sockets in sockets_by_user.items():
            dead = [channel for channel, proc in sockets.items() if proc not in alive]
            if dead:
                dead_by_user[uid] = dead
            count = len(sockets) - len(dead)
            if count:
                live[uid] = count
        if dead_by_user:
            self._forget_dead_sockets(sockets_by_user, dead_by_user)
        return live

    def _forget_dead_sockets(self, sockets_by_user: dict, dead_by_user: dict[int, list]) -> None:
        """Drop sockets of dead processes; their users were last seen at that process's last beat."""
        dead_processes = sorted({sockets_by_user[uid][channel] for uid, channels in dead_by_user.items()
                                 for channel in channels})
        beats = dict(zip(dead_processes, self.redis.hmget(self._beats_key(), dead_processes)))
        uids = list(dead_by_user)
        seen = dict(zip(uids, self.redis.mget([self._seen_key(uid) for uid in uids])))
        pipe = self.redis.pipeline()
        for uid, channels in dead_by_user.items():
            pipe.hdel(self._user_key(uid), *channels)
            last_beat = max(float(beats[sockets_by_user[uid][channel]] or 0) for channel in channels)
            if last_beat > float(seen[uid] or 0):
                pipe.set(self._seen_key(uid), last_beat)
        pipe.execute()

    # While Redis is unreachable nobody counts as online for new assignments (sessions queue and
    # nothing is lost), and everyone counts as just seen, so sessions stay with their agents.

    def online(self, user_ids: Iterable[int]) -> set[int]:
        """Users with a live socket anywhere; those with one on this process need no Redis."""
        with self._lock:
            here = set(self._local.values())
        user_ids = list(dict.fromkeys(user_ids))
        others = [uid for uid in user_ids if uid not in here]
        try:
            return {uid for uid in user_ids if uid in here} | (set(self._live_sockets(others)) if others else set())
        except redis.RedisError as error:
            outages.report(logger, error, "presence unavailable; counting nobody online", level=logging.WARNING)
            return set()

    def offline(self, user_ids: Iterable[int]) -> set[int]:
        """Users known to have no live socket anywhere: those on this process need no Redis, and
        while Redis is unreachable nobody is known to be offline (nobody is told they missed anything)."""
        with self._lock:
            here = set(self._local.values())
        others = [uid for uid in dict.fromkeys(user_ids) if uid not in here]
        if not others:
            return set()
        try:
            live = self._live_sockets(others)
        except redis.RedisError:
            logger.warning("presence unavailable; counting nobody offline", exc_info=True)
            return set()
        return {uid for uid in others if uid not in live}

    def socket_count(self, user_id: int) -> int:
        return self._live_sockets([user_id]).get(user_id, 0)

    def last_seen(self, user_id: int) -> float | None:
        """Now while online; else the last connect/disconnect, or when its process stopped beating."""
        try:
            if self._live_sockets([user_id]):
                return time.time()
            seen = self.redis.get(self._seen_key(user_id))
        except redis.RedisError as error:
            outages.report(logger, error, "presence unavailable; counting %s as just seen", user_id,
                           level=logging.WARNING)
            return time.time()
        return float(seen) if seen else None


@cache
def presence() -> LocalPresence | RedisPresence:
    if settings.REDIS_URL:
        return RedisPresence(settings.REDIS_URL, settings.IM_REDIS_PREFIX)
    return LocalPresence()
