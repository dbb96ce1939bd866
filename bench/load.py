"""The load generator: real WebSocket clients with real tokens, closed or open loop, and what they saw.

Every message carries a unique key as the first word of its text (and as `client_msg_id`); the
receiving socket looks it up, so a delivery is matched to its send whatever the server adds. One
event loop, one process (pinned to its own core by the caller). Every wait is bounded.

The sockets are picows' (a WebSocket client compiled with Cython, frames handed to a callback):
with `websockets` the generator spent ~40 µs of its core per frame read, most of it parsing frames
in Python, and at a group of 100 all sending it filled its core before the server filled its own.
"""

import asyncio
import itertools
import logging
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import orjson
from picows import WSCloseCode, WSError, WSListener, WSMsgType, ws_connect

# Codes the server pushes on its own; everything else answers a request (PROTOCOL.md 2).
PUSH_CODES = frozenset({200, 301, 302, 303, 304, 305, 306, 307})
CONNECT_SECONDS = 15
REPLY_SECONDS = 10
SYNC_PAGES = 40

clock = time.perf_counter
logging.getLogger("picows").setLevel(logging.WARNING)  # it logs each socket's connect and disconnect at INFO


@dataclass
class Plan:
    """What load to put on the servers (see `manage.py imbench --help`)."""

    mode: str = "private"
    window: int = 1
    rate: float | None = None
    warmup: float = 2.0
    duration: float = 10.0
    drain: float = 5.0
    gate: str = "deliver"
    msg_bytes: int = 64
    msg_timeout: float = 5.0
    senders: int | None = None
    pairs_together: bool = False  # private, several processes: both users of a pair on one
    replies: bool = False
    connect_concurrency: int = 50
    idle_hold: float = 5.0
    sync_check: bool = True
    progress: bool = True
    label: str = ""


class Msg:
    __slots__ = ("key", "sock", "t_send", "t_ack", "measured", "expected", "delivered", "acked", "failed", "done",
                 "holding", "seq", "chat_id", "question", "answer", "awaits_answer")

    def __init__(self, key: str, sock: "Sock", t_send: float, measured: bool, expected: int):
        self.key = key
        self.sock = sock
        self.t_send = t_send
        self.t_ack = 0.0
        self.measured = measured
        self.expected = expected
        self.delivered = 0
        self.acked = False
        self.failed = False
        self.done = False
        self.holding = False
        self.seq = None
        self.chat_id = None
        self.question: Msg | None = None  # an agent's answer: the consumer message it answers
        self.answer: Msg | None = None
        self.awaits_answer = False  # --replies: a consumer's message keeps its slot until answered


class Sock:
    __slots__ = ("index", "uid", "url", "ws", "pending", "seen", "sem", "to_uid", "content", "closed", "answers")

    def __init__(self, index: int, uid: int, url: str):
        self.index = index
        self.uid = uid
        self.url = url
        self.ws = None  # picows' WSTransport once open
        self.pending: deque = deque()
        self.seen: set[str] = set()
        self.sem: asyncio.Semaphore | None = None
        self.to_uid = 0
        self.content: dict = {}
        self.closed = False
        self.answers = False  # an agent that answers what it receives (--replies)


@dataclass
class Outcome:
    """Raw observations of one run; `report.summarize` turns them into figures."""

    mode: str
    sockets: int = 0
    senders: int = 0
    expected_per_msg: int = 1
    sent: int = 0
    sent_in_window: int = 0
    acked: int = 0
    errors: int = 0
    error_codes: Counter = field(default_factory=Counter)
    unanswered: int = 0
    timed_out: int = 0
    delivered: int = 0
    delivered_in_window: int = 0
    late: int = 0
    completed_in_window: int = 0
    duplicates: int = 0
    lost: int = 0
    lost_messages: int = 0
    needed_sync: int | None = None
    answers: int | None = None
    unrecovered: int | None = None
    stray: int = 0
    echoes: int = 0
    other_pushes: int = 0
    closed_sockets: int = 0
    generator_lag_ms: float = 0.0
    generator_cpu_pct: float | None = None
    latencies: list = field(default_factory=list)
    acks: list = field(default_factory=list)
    fanout: list = field(default_factory=list)
    ready: list = field(default_factory=list)
    window_seconds: float = 0.0
    idle: dict | None = None
    connect: dict | None = None


class Load:
    """One run of one mode against a list of server URLs."""

    def __init__(self, plan: Plan, urls: list[str], fixtures: dict, *, monitor=None, supports_sync: bool = True,
                 on_measure=None):
        self.plan = plan
        self.on_measure = on_measure
        self.urls = urls
        self.fixtures = fixtures
        self.monitor = monitor
        self.supports_sync = supports_sync
        self.out = Outcome(mode=plan.mode)
        self.msgs: dict[str, Msg] = {}
        self.outstanding: dict[str, Msg] = {}
        self.incomplete = 0
        self.socks: list[Sock] = []
        self.sending: list[Sock] = []
        self.t0 = self.t1 = float("inf")
        self.phase = "setup"
        self.stopping = False
        self.drained = False
        self.counter = itertools.count()
        self.tag = fixtures.get("tag", "m")
        self.pad = ""
        self.answered = plan.replies and plan.mode == "service"
        self.ready_seconds: list[float] = []

    # --- sockets -------------------------------------------------------------------------------

    def _make_socks(self, users: list[dict], start: int = 0) -> list[Sock]:
        socks = []
        for offset, user in enumerate(users):
            index = start + offset
            # Round-robin over the servers: a private pair (sockets 2k and 2k + 1) spans two of them,
            # unless asked to share one (then none of its messages crosses Redis).
            server = self.urls[(index // 2 if self.plan.pairs_together else index) % len(self.urls)]
            url = f"{server}?token={user['token']}"
            socks.append(Sock(index, user["id"], url))
        return socks

    async def _open(self, sock: Sock) -> None:
        sock.closed = False
        sock.ws, _ = await ws_connect(lambda: Reader(self, sock), sock.url, websocket_handshake_timeout=CONNECT_SECONDS,
                                      max_frame_size=2**22)
        # The server answers frames only once the socket is in its push groups: PONG = ready.
        await self.request(sock, "ping")

    async def _open_all(self, socks: list[Sock], what: str = "connecting", tolerate: bool = False) -> int:
        """Open and ready every socket (3 tries each); how many failed (raises unless `tolerate`)."""
        limit = asyncio.Semaphore(self.plan.connect_concurrency)
        done = failed = 0

        async def one(sock: Sock) -> None:
            nonlocal done, failed
            async with limit:
                started = clock()
                for attempt in range(3):
                    try:
                        await self._open(sock)
                        break
                    except (OSError, WSError, TimeoutError) as error:
                        if sock.ws is not None:
                            sock.ws.disconnect(graceful=False)
                            sock.ws = None
                        if attempt == 2:
                            if tolerate:
                                failed += 1
                                sock.closed = True
                                return
                            raise ConnectionError(f"socket {sock.index} could not connect: {error!r}") from None
                        await asyncio.sleep(0.2 * (attempt + 1))
                self.ready_seconds.append(clock() - started)
                done += 1
                if self.plan.progress and (done % 100 == 0 or done == len(socks)):
                    self._say(f"{what} {done}/{len(socks)}")

        await asyncio.gather(*(one(sock) for sock in socks))
        self.socks.extend(socks)
        return failed

    async def request(self, sock: Sock, frame: str | dict, timeout: float = REPLY_SECONDS) -> dict:
        """Send a frame whose reply we wait for (ping -> PONG, chat.sync)."""
        if sock.closed:
            raise ConnectionError("socket closed")
        future = asyncio.get_running_loop().create_future()
        sock.pending.append(future)
        sock.ws.send(WSMsgType.TEXT, frame.encode() if isinstance(frame, str) else orjson.dumps(frame))
        return await asyncio.wait_for(future, timeout)

    def _received(self, sock: Sock, raw: bytes) -> None:
        frame = orjson.loads(raw)
        code = frame.get("code")
        if code in PUSH_CODES:
            if code == 200:
                self._delivered(sock, frame.get("result") or {})
            else:
                self.out.other_pushes += 1
        elif sock.pending:
            self._replied(sock, sock.pending.popleft(), code, frame)

    def _gone(self, sock: Sock) -> None:
        """The socket closed: what it waits for will not come."""
        sock.closed = True
        while sock.pending:
            entry = sock.pending.popleft()
            if isinstance(entry, Msg):
                self._fail(entry, unanswered=True)
            elif not entry.done():
                entry.set_exception(ConnectionError("socket closed"))

    # --- messages ------------------------------------------------------------------------------

    def _delivered(self, sock: Sock, result: dict) -> None:
        text = result.get("msg")
        key = text.split(" ", 1)[0] if isinstance(text, str) else ""
        msg = self.msgs.get(key)
        if msg is None:
            self.out.stray += 1
            return
        if msg.sock is sock:
            self.out.echoes += 1  # the naive baseline pushes group messages back to their sender
            return
        if key in sock.seen:
            self.out.duplicates += 1
            return
        sock.seen.add(key)
        if self.drained:
            self.out.late += 1  # after the drain: neither delivered in time nor (any more) lost
            return
        if sock.answers and msg.question is None and not self.stopping:
            self._send(sock, question=msg)  # the agent answers the consumer (--replies)
        now = clock()
        msg.delivered += 1
        self.out.delivered += 1
        if self.t0 <= now < self.t1:
            self.out.delivered_in_window += 1
        if msg.measured:
            self.out.latencies.append(now - msg.t_send)
        if msg.delivered == msg.expected:
            if msg.measured and msg.expected > 1:
                self.out.fanout.append(now - msg.t_send)
            if self.t0 <= now < self.t1:
                self.out.completed_in_window += 1
            self._progress(msg)

    def _replied(self, sock: Sock, entry, code, frame: dict) -> None:
        if not isinstance(entry, Msg):
            if not entry.done():
                entry.set_result(frame)
            return
        if code != 1:
            self.out.errors += 1
            self.out.error_codes[str(code)] += 1
            self._fail(entry)
            return
        result = frame.get("result") or {}
        entry.acked = True
        entry.t_ack = clock()
        entry.seq = result.get("seq")
        entry.chat_id = result.get("chat_id")
        self.out.acked += 1
        if entry.measured:
            self.out.acks.append(clock() - entry.t_send)
        self._progress(entry)

    def _progress(self, msg: Msg) -> None:
        if msg.done:
            return
        if msg.acked and msg.delivered >= msg.expected:
            msg.done = True
            self.incomplete -= 1
            self._release_if_settled(msg.question or msg)
        elif msg.acked and self.plan.gate == "ack":
            self._release(msg)

    def _release_if_settled(self, msg: Msg) -> None:
        """Done, and (--replies) its answer back at the consumer too: the round trip is the unit."""
        if msg.done and (not msg.awaits_answer or (msg.answer is not None and msg.answer.done)):
            self._release(msg)

    def _fail(self, msg: Msg, *, unanswered: bool = False) -> None:
        if msg.done:
            return
        msg.failed = msg.done = True
        self.incomplete -= 1
        if unanswered:
            self.out.unanswered += 1
        self._release(msg.question or msg)

    def _release(self, msg: Msg) -> None:
        if msg.holding:
            msg.holding = False
            self.outstanding.pop(msg.key, None)
            msg.sock.sem.release()

    def _send(self, sock: Sock, t_send: float | None = None, hold: bool = False, question: Msg | None = None) -> None:
        key = f"{self.tag}{sock.index}.{next(self.counter)}"
        now = clock()
        t_send = now if t_send is None else t_send
        msg = Msg(key, sock, t_send, self.t0 <= t_send < self.t1, self.out.expected_per_msg)
        if question is not None:
            msg.question, question.answer = question, msg
            self.out.answers += 1
        else:
            msg.awaits_answer = self.answered
        self.msgs[key] = msg
        self.incomplete += 1
        self.out.sent += 1
        if msg.measured:
            self.out.sent_in_window += 1
        if hold:
            msg.holding = True
            self.outstanding[key] = msg
        content = dict(sock.content)
        if question is not None:
            content["to_uid"] = question.sock.uid
        content["msg"] = f"{key} {self.pad}"[: max(self.plan.msg_bytes, len(key) + 1)]
        content["client_msg_id"] = key
        if sock.closed:
            self._fail(msg, unanswered=True)
            return
        sock.pending.append(msg)
        sock.ws.send(WSMsgType.TEXT, orjson.dumps({"class": "chat", "action": "sendMsg", "content": content}))

    async def _closed_loop(self, sock: Sock) -> None:
        while not self.stopping and not sock.closed:
            await sock.sem.acquire()
            if self.stopping:
                sock.sem.release()
                return
            self._send(sock, hold=True)

    async def _open_loop(self) -> None:
        rate = self.plan.rate
        start = clock()
        sent = 0
        turn = itertools.cycle(self.sending)
        while not self.stopping:
            due = int((clock() - start) * rate) + 1 - sent  # message n is due at start + n / rate
            for _ in range(min(due, 1000)):
                scheduled = start + sent / rate
                self.out.generator_lag_ms = max(self.out.generator_lag_ms, (clock() - scheduled) * 1000)
                self._send(next(turn), t_send=scheduled)
                sent += 1
                # A send does not wait: without a turn of the loop here, a run of sends would hold
                # back the replies and pushes that arrived meanwhile, and time them late.
                await asyncio.sleep(0)
            await asyncio.sleep(max(0.0, start + sent / rate - clock()))

    async def _sweep(self) -> None:
        """Free the window slot of a message acked but not delivered in time (likely lost).

        An unanswered message keeps its slot: the server is still working on it, and a closed loop
        must not turn into an open one when the server is merely slow.
        """
        while True:
            await asyncio.sleep(0.2)
            limit = clock() - self.plan.msg_timeout
            for msg in [msg for msg in self.outstanding.values() if msg.acked and msg.t_ack < limit]:
                self.out.timed_out += 1
                self._release(msg)

    # --- progress ------------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        if self.plan.progress:
            sys.stderr.write(f"\r\033[K[{self.plan.label}] {text}")
            sys.stderr.flush()

    async def _report_progress(self, end: float) -> None:
        last_time, last_count = clock(), 0
        while True:
            await asyncio.sleep(0.5)
            now = clock()
            if self.monitor is not None:
                self.monitor.rss()
            rate = (self.out.delivered - last_count) / (now - last_time)
            last_time, last_count = now, self.out.delivered
            total = end - (self.t0 - self.plan.warmup)
            done = min(now - (self.t0 - self.plan.warmup), total)
            width = 24
            filled = int(width * done / total) if total > 0 else width
            self._say(
                f"{self.phase:<7} [{'#' * filled}{'.' * (width - filled)}] {done:5.1f}/{total:.0f}s "
                f"sent {self.out.sent} delivered {self.out.delivered} ({rate:,.0f}/s) "
                f"errors {self.out.errors} waiting {self.incomplete}"
            )

    # --- runs ----------------------------------------------------------------------------------

    def _plan_sockets(self) -> None:
        users = self.fixtures["users"]
        mode = self.plan.mode
        if mode == "private":
            socks = self._make_socks(users)
            for sock in socks:
                partner = socks[sock.index ^ 1]
                sock.to_uid = partner.uid
                sock.content = {"to_uid": partner.uid, "chat_type": 1, "msg_type": 1, "chat_id": "", "shop_id": 0,
                                "role_type": 0}
            self.sending = socks
            self.out.expected_per_msg = 1
            self._planned = [socks]
        elif mode == "group":
            socks = self._make_socks(users)
            group_id = self.fixtures["group_id"]
            for sock in socks:
                sock.content = {"to_uid": group_id, "chat_type": 2, "msg_type": 1, "chat_id": "", "shop_id": 0,
                                "role_type": 0}
            self.sending = socks[: self.plan.senders or len(socks)]
            self.out.expected_per_msg = len(socks) - 1
            self._planned = [socks]
        elif mode == "service":
            agents = self._make_socks(self.fixtures["agents"])
            consumers = self._make_socks(users, start=len(agents))
            shop_id = self.fixtures["shop_id"]
            for sock in consumers:
                sock.content = {"to_uid": shop_id, "chat_type": 4, "msg_type": 1, "chat_id": "", "shop_id": shop_id,
                                "role_type": 0}
            for sock in agents:
                sock.answers = self.answered
                sock.content = {"to_uid": 0, "chat_type": 4, "msg_type": 1, "chat_id": "", "shop_id": shop_id,
                                "role_type": "service"}
            if self.answered:
                self.out.answers = 0
            self.sending = consumers
            self.out.expected_per_msg = 1
            self._planned = [agents, consumers]  # agents first: they must be online before consumers write
        else:
            raise ValueError(f"unknown mode {mode}")
        self.out.senders = len(self.sending)

    async def run(self) -> Outcome:
        try:
            if self.plan.mode == "idle":
                await self._run_idle()
            elif self.plan.mode == "connect":
                await self._run_connect()
            else:
                await self._run_traffic()
        finally:
            await self._close_all()
            if self.plan.progress:
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()
        return self.out

    async def _run_traffic(self) -> None:
        plan = self.plan
        self._plan_sockets()
        self.pad = "x" * plan.msg_bytes
        for group in self._planned:
            await self._open_all(group)
        self.out.sockets = len(self.socks)
        for sock in self.sending:
            sock.sem = asyncio.Semaphore(plan.window)
        start = clock()
        self.t0 = start + plan.warmup
        self.t1 = self.t0 + plan.duration
        self.out.window_seconds = plan.duration
        helpers = [asyncio.create_task(self._sweep()), asyncio.create_task(self._report_progress(self.t1))]
        if plan.rate:
            drivers = [asyncio.create_task(self._open_loop())]
        else:
            drivers = [asyncio.create_task(self._closed_loop(sock)) for sock in self.sending]
        try:
            self.phase = "warm-up"
            await asyncio.sleep(plan.warmup)
            if self.monitor is not None:
                # In a thread: it reads each server's /metrics, which under load blocked this loop
                # (the load's clock) for ~30 ms at the start of the window.
                await asyncio.to_thread(self.monitor.start)
            if self.on_measure is not None:
                self.on_measure()
            self.phase = "measure"
            cpu_start = time.process_time()
            await asyncio.sleep(max(self.t1 - clock(), 0))
            self.out.generator_cpu_pct = round(100 * (time.process_time() - cpu_start) / plan.duration, 1)
            if self.monitor is not None:
                self.server = await asyncio.to_thread(self.monitor.stop)
            self.stopping = True
            for task in drivers:
                task.cancel()
            await asyncio.gather(*drivers, return_exceptions=True)
            self.phase = "drain"
            await self._drain()
            self.drained = True
        finally:
            for task in helpers + drivers:
                task.cancel()
            await asyncio.gather(*helpers, *drivers, return_exceptions=True)
        self._count_lost()
        if plan.sync_check and self.supports_sync and plan.mode in ("private", "group"):
            self.out.needed_sync, self.out.unrecovered = 0, self.out.lost
            if self.out.lost:
                self.phase = "sync"
                self._say("checking what chat.sync recovers")
                await self._sync_check()
        self.out.closed_sockets = sum(1 for sock in self.socks if sock.closed)

    async def _drain(self) -> None:
        """Wait for what is still on its way: until nothing is, or nothing moved for `drain` seconds.

        A server with a backlog keeps answering, so its late messages are not counted as lost; a
        hard cap of 10 x drain (at least 30 s) keeps the run bounded.
        """
        cap = clock() + max(30.0, 10 * self.plan.drain)
        moved_at, last = clock(), (self.out.acked, self.out.delivered, self.out.errors)
        while self.incomplete > 0 and clock() < cap:
            await asyncio.sleep(0.05)
            now = (self.out.acked, self.out.delivered, self.out.errors)
            if now != last:
                moved_at, last = clock(), now
            elif clock() - moved_at > self.plan.drain:
                break

    def _receivers_of(self, msg: Msg) -> list[Sock]:
        if self.plan.mode == "private":
            return [self.socks[msg.sock.index ^ 1]]
        if self.plan.mode == "group":
            return [sock for sock in self.socks if sock is not msg.sock]
        return []

    def _count_lost(self) -> None:
        """Acked but not (fully) delivered after the drain: missing deliveries, and their messages."""
        self.missing: dict[int, dict[str, Msg]] = {}
        for msg in self.msgs.values():
            if not msg.acked or msg.failed or msg.delivered >= msg.expected:
                continue
            self.out.lost += msg.expected - msg.delivered
            self.out.lost_messages += 1
            for sock in self._receivers_of(msg):
                if msg.key not in sock.seen:
                    self.missing.setdefault(sock.index, {})[msg.key] = msg

    async def _sync_check(self) -> None:
        """Ask chat.sync, as a reconnecting client would, for each receiver's missing messages."""
        limit = asyncio.Semaphore(32)

        async def one(sock: Sock, missing: dict[str, Msg]) -> int:
            cursors: dict[str, int] = {}
            for msg in missing.values():
                if msg.chat_id and msg.seq:
                    cursors[msg.chat_id] = min(cursors.get(msg.chat_id, msg.seq), msg.seq - 1)
            found = 0
            async with limit:
                for _ in range(SYNC_PAGES):
                    if not missing or not cursors or sock.closed:
                        break
                    try:
                        reply = await self.request(sock, {"class": "chat", "action": "sync",
                                                          "content": {"chats": cursors, "limit": 500}})
                    except (TimeoutError, ConnectionError):
                        break
                    result = reply.get("result") or {}
                    for item in result.get("messages") or []:
                        key = str(item.get("msg", "")).split(" ", 1)[0]
                        if missing.pop(key, None) is not None:
                            found += 1
                        if item.get("chat_id") in cursors and isinstance(item.get("seq"), int):
                            cursors[item["chat_id"]] = max(cursors[item["chat_id"]], item["seq"])
                    if not result.get("more"):
                        break
            return found

        results = await asyncio.gather(*(one(self.socks[index], missing) for index, missing in self.missing.items()))
        self.out.needed_sync = sum(results)
        # What neither a push (in time or late) nor chat.sync brought: really gone for the client.
        self.out.unrecovered = sum(1 for index, missing in self.missing.items() for key in missing
                                   if key not in self.socks[index].seen)

    async def _run_idle(self) -> None:
        """Open N sockets that only say hello; server memory per socket, and whether they stay up."""
        plan = self.plan
        users = self.fixtures["users"]
        socks = self._make_socks(users)
        warm = max(1, min(50, len(socks) // 100))
        await self._open_all(socks[:warm], "warming")
        await asyncio.sleep(1.0)
        before = self.monitor.rss() if self.monitor else 0
        if self.monitor is not None:
            await asyncio.to_thread(self.monitor.start)
        if self.on_measure is not None:  # --profile samples the opening
            self.on_measure()
        started = clock()
        failed = await self._open_all(socks[warm:], tolerate=True)
        connect_seconds = clock() - started
        self.phase = "idle"
        hold_end = clock() + plan.idle_hold
        while clock() < hold_end:
            self._say(f"holding {len(socks)} idle sockets, {hold_end - clock():4.1f}s left")
            await asyncio.sleep(min(0.5, max(hold_end - clock(), 0)))
        after = self.monitor.rss() if self.monitor else 0
        self.server = await asyncio.to_thread(self.monitor.stop) if self.monitor else {}
        alive = await self._alive(socks)
        opened = len(socks) - warm
        self.out.sockets = len(socks)
        self.out.idle = {
            "sockets": len(socks),
            "failed_to_open": failed,
            "alive": alive,
            "connect_per_s": round(opened / connect_seconds, 1) if connect_seconds > 0 else None,
            "rss_before_mb": round(before / 2**20, 1),
            "rss_after_mb": round(after / 2**20, 1),
            "rss_per_socket_kb": round((after - before) / opened / 1024, 1) if opened and self.monitor else None,
            "held_seconds": plan.idle_hold,
        }

    async def _run_connect(self) -> None:
        """Open N sockets, `connect_concurrency` at a time, as fast as the server lets them be ready.

        Ready = handshake accepted and a first ping answered (the server answers only once the socket
        is in its push groups). A few sockets are opened first and not measured (imports, caches).
        """
        socks = self._make_socks(self.fixtures["users"])
        warm = max(1, min(self.plan.connect_concurrency, len(socks) // 100))
        await self._open_all(socks[:warm], "warming")
        self.ready_seconds.clear()
        if self.monitor is not None:
            await asyncio.to_thread(self.monitor.start)
        if self.on_measure is not None:  # --profile samples the opening
            self.on_measure()
        started = clock()
        failed = await self._open_all(socks[warm:], "opening", tolerate=True)
        seconds = clock() - started
        self.server = await asyncio.to_thread(self.monitor.stop) if self.monitor else {}
        opened = len(socks) - warm - failed
        self.out.sockets = len(socks)
        self.out.connect = {
            "sockets": len(socks),
            "measured": len(socks) - warm,
            "concurrency": self.plan.connect_concurrency,
            "failed_to_open": failed,
            "alive": await self._alive(socks),
            "seconds": round(seconds, 3),
            "ready_per_s": round(opened / seconds, 1) if seconds > 0 else None,
        }
        self.out.ready = list(self.ready_seconds)

    async def _alive(self, socks: list[Sock]) -> int:
        """How many still answer a ping (an idle naive socket can die on redis-py's 5 s timeout)."""
        limit = asyncio.Semaphore(200)

        async def ping(sock: Sock) -> bool:
            async with limit:
                if sock.closed:
                    return False
                try:
                    await self.request(sock, "ping")
                    return True
                except (TimeoutError, ConnectionError):
                    return False

        return sum(await asyncio.gather(*(ping(sock) for sock in socks)))

    async def _close_all(self) -> None:
        async def close(sock: Sock) -> None:
            if sock.ws is None:
                return
            sock.ws.send_close(WSCloseCode.OK)
            try:
                await asyncio.wait_for(sock.ws.wait_disconnected(), 3)
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
            sock.ws.disconnect(graceful=False)

        limit = 500
        for start in range(0, len(self.socks), limit):
            await asyncio.gather(*(close(sock) for sock in self.socks[start:start + limit]))


async def run_load(plan: Plan, urls: list[str], fixtures: dict, *, monitor=None, supports_sync: bool = True,
                   timeout: float, on_measure=None) -> tuple[Outcome, dict]:
    """One bounded run; (observations, server figures measured during the window)."""
    load = Load(plan, urls, fixtures, monitor=monitor, supports_sync=supports_sync, on_measure=on_measure)
    outcome = await asyncio.wait_for(load.run(), timeout)
    return outcome, getattr(load, "server", {}) or {}


class Reader(WSListener):
    """One socket's frames, as picows hands them over (a message in several frames is joined)."""

    def __init__(self, load: Load, sock: Sock):
        self.load = load
        self.sock = sock
        self.parts: list[bytes] = []

    def on_ws_frame(self, transport, frame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.TEXT or kind == WSMsgType.CONTINUATION:
            if frame.fin and not self.parts:
                self._handle(frame.get_payload_as_bytes())
                return
            self.parts.append(frame.get_payload_as_bytes())
            if frame.fin:
                raw, self.parts = b"".join(self.parts), []
                self._handle(raw)
        elif kind == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def _handle(self, raw: bytes) -> None:
        try:
            self.load._received(self.sock, raw)
        except Exception as error:  # noqa: BLE001 - a bad frame must not stop the run silently
            print(f"\nreader of socket {self.sock.index} failed: {error!r}", file=sys.stderr)

    def on_ws_disconnected(self, transport) -> None:
        self.load._gone(self.sock)
