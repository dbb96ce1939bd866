"""Faults under load (issue 5): nothing acked is lost, nothing is delivered or stored twice.

50 clients (25 pairs, private chats, each pair split over the two processes) chat through TWO daphne
processes on PostgreSQL + Redis while, one after another:

  redis     the channel layer's and presence's Redis is killed mid-stream and started again (its own
            redis-server on a free port: the machine's Redis is shared and is left alone);
  daphne    one daphne process is killed with SIGKILL; its clients reconnect to the other one and
            catch up with chat.sync from their per-chat last seq;
  postgres  PostgreSQL refuses connections for a few seconds: daphne reaches it through a small TCP
            proxy in this script, which drops every open connection and refuses new ones (the
            machine's PostgreSQL cluster is left alone; the run uses a fresh database of its own);
  restart   a rolling restart: each daphne process in turn gets SIGTERM, drains (its clients get close
            code 4012 and reconnect to the other one, whose port is of the same list), exits, and a
            new process takes its port, while the clients keep chatting;
  sentinel  the servers reach Redis through Sentinel (a master, its replica and two Sentinels of the
            run's own, REDIS_URL=redis+sentinel://...) and SENTINEL FAILOVER promotes the replica
            mid-stream. A run with this fault runs all its faults on Sentinel, so it cannot also
            have the `redis` one (which kills the one Redis).

Each client keeps an outbox: a message not acked (timeout, -500, closed socket) is sent again with the
same client_msg_id, after reconnecting if need be, with backoff. After each fault the clients stop
writing, drain their outboxes and sync; then every acked message must have reached its recipient
exactly once (live 200 pushes and what chat.sync returns, deduplicated by msg_id; the same msg_id
pushed twice to one socket is a duplicate), and no client_msg_id may be stored twice.

    python bench/faults.py [--pairs 25] [--faults redis,daphne,postgres,restart] [--json] [--keep-logs]
    python bench/faults.py --faults sentinel,restart

prints one line of counts per fault (sent, acked, delivered, duplicates, lost, stored twice, ...),
with what the servers logged meanwhile (log records and tracebacks: an outage should be a few lines
saying it went and came back) and the outages their /metrics counted.
Exit status 1 when anything acked was lost, duplicated or stored twice. Everything talks to
127.0.0.1 only; every process started is stopped at the end, and the database is dropped.
"""

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/faults.py`
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402
import websockets  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidHandshake  # noqa: E402

from imchat import redis_client  # noqa: E402

BIN = Path(sys.executable).parent
DAPHNE = [sys.executable, "-m", "imchat.serve"]  # daphne on uvloop, as production starts it
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
POSTGRES_URL = os.environ.get("IM_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
FAULTS = ("redis", "daphne", "postgres", "restart", "sentinel")
ONE_REDIS_FAULTS = ("redis", "daphne", "postgres", "restart")  # the default run
SHUTDOWN_SECONDS = 10  # the servers' IM_SHUTDOWN_SECONDS
DEPENDENCY_OF = {"redis": "redis", "postgres": "database"}  # the fault -> the dependency in imchat's metrics
LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (WARNING|ERROR|CRITICAL) ")
SCRUBBED = ("DATABASE_URL", "REDIS_URL", "IM_REDIS_PREFIX", "IM_PUBLIC_URL", "IM_VAR_DIR", "ALLOWED_HOSTS",
            "CORS_ALLOWED_ORIGINS", "IM_JWT_AUTO_CREATE", "IM_PORT", "DJANGO_SECRET_KEY", "DJANGO_SETTINGS_MODULE",
            "IM_RATE_LIMIT", "IM_RATE_BURST", "IM_USER_RATE_LIMIT")
STARTUP_SECONDS = 30
REPLY_SECONDS = 5.0
BACKOFF_MAX = 2.0


class FaultRunError(Exception):
    """The run could not be set up or did not finish; the message says why."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise FaultRunError(f"{what} exited with {process.returncode}:\n{tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise FaultRunError(f"{what} not listening on :{port} after {STARTUP_SECONDS}s:\n{tail(log)}")


def tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def stop_process(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


# --- The parts: our own redis-server, a TCP proxy in front of PostgreSQL, daphne processes ---------


class RedisServer:
    """A redis-server of this run only, on a fixed free port, without persistence (a restart forgets all)."""

    def __init__(self, work_dir: Path, name: str = "redis", args: tuple[str, ...] = ()):
        self.port = free_port()
        self.work_dir = work_dir
        self.name = name
        self.args = args
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.starts += 1
        log = self.work_dir / f"{self.name}-{self.starts}.log"
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.work_dir), "--logfile", str(log), *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        wait_listening(self.port, self.process, "redis-server", log)

    def kill(self) -> None:
        """As a crash: SIGKILL, no shutdown, nothing saved."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.process)


class SentinelRedis:
    """A master, its replica and two Sentinels watching them, all of this run only; the servers reach
    it by a `redis+sentinel://` URL (imchat/redis_client.py). `failover()` promotes the replica, as
    an operator's SENTINEL FAILOVER or a master's death would."""

    MASTER = "imchat"

    def __init__(self, work_dir: Path, sentinels: int = 2):
        self.work_dir = work_dir
        self.master = RedisServer(work_dir, "redis-master")
        self.replica = RedisServer(work_dir, "redis-replica", ("--replicaof", "127.0.0.1", str(self.master.port)))
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.sentinels: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.MASTER}/0"

    def master_port(self) -> int:
        """The master's port once every Sentinel names the same one (else 0)."""
        ports = set()
        for port in self.sentinel_ports:
            with redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2) as sentinel:
                ports.add(int(sentinel.sentinel_get_master_addr_by_name(self.MASTER)[1]))
        return ports.pop() if len(ports) == 1 else 0

    def start(self) -> None:
        self.master.start()
        self.replica.start()
        for index, port in enumerate(self.sentinel_ports):
            config = self.work_dir / f"sentinel-{index}.conf"  # Sentinel rewrites its file: one each
            config.write_text(f"port {port}\nbind 127.0.0.1\ndir {self.work_dir}\n"
                              f"logfile {self.work_dir / f'sentinel-{index}.log'}\n"
                              f"sentinel monitor {self.MASTER} 127.0.0.1 {self.master.port} 1\n"
                              f"sentinel down-after-milliseconds {self.MASTER} 2000\n"
                              f"sentinel failover-timeout {self.MASTER} 10000\n")
            process = subprocess.Popen([REDIS_SERVER, str(config), "--sentinel"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self.sentinels.append(process)
            wait_listening(port, process, "redis-server --sentinel", self.work_dir / f"sentinel-{index}.log")
        self._wait(self._replica_ready, "the Sentinels to see the replica in sync")

    def _replica_ready(self) -> bool:
        for port in self.sentinel_ports:
            with redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2) as sentinel:
                replicas = sentinel.sentinel_slaves(self.MASTER)
            if not any(replica.get("master-link-status") == "ok" and replica.get("is_slave") for replica in replicas):
                return False
        return True

    def failover(self) -> tuple[int, int]:
        """SENTINEL FAILOVER; returns (old, new) master port once every Sentinel names the new one."""
        old = self.master_port()
        with redis.Redis(port=self.sentinel_ports[0], socket_timeout=2, socket_connect_timeout=2) as sentinel:
            sentinel.execute_command("SENTINEL", "FAILOVER", self.MASTER)
        self._wait(lambda: self.master_port() not in (old, 0), "the Sentinels to name a new master")
        return old, self.master_port()

    def _wait(self, done, what: str, seconds: float = STARTUP_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if done():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise FaultRunError(f"waited {seconds}s for {what}:\n{tail(self.work_dir / 'sentinel-0.log')}")

    def stop(self) -> None:
        for process in self.sentinels:
            stop_process(process)
        self.replica.stop()
        self.master.stop()


class PostgresProxy:
    """A TCP relay in front of PostgreSQL that can drop every connection and refuse new ones."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.relays: set[asyncio.Task] = set()
        self.dropped = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_address=True)

    async def outage(self, seconds: float) -> None:
        """Refuse new connections (nothing listens) and cut the open ones, for `seconds`."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for downstream, upstream in list(self.open):
            self.dropped += 1
            downstream.transport.abort()
            upstream.transport.abort()
        self.open.clear()
        await asyncio.sleep(seconds)
        await self.start()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for downstream, upstream in list(self.open):
            downstream.transport.abort()
            upstream.transport.abort()
        if self.relays:
            await asyncio.wait(self.relays, timeout=2)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.relays.add(task)
        task.add_done_callback(self.relays.discard)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self.open.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self.open.discard(pair)
            for side in pair:
                side.transport.abort()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.transport.abort()


@dataclass
class Daphne:
    port: int
    process: subprocess.Popen
    log_path: Path
    log_read: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def terminate(self) -> tuple[int | None, float]:
        """SIGTERM, as an orchestrator stops a process: its exit code (None: still running at the
        shutdown bound and a few seconds more, then killed) and how long it took."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=SHUTDOWN_SECONDS + 5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = None
        return code, time.monotonic() - started

    def new_log_lines(self) -> list[str]:
        """The log records (WARNING and above: the run's LOG_LEVEL) and traceback lines written since
        the last call; daphne's access log lines are not records and are left out."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self.log_read)
                text = log.read().decode(errors="replace")
        except OSError:
            return []
        self.log_read += len(text.encode())
        return [line for line in text.splitlines() if LOG_RECORD.match(line) or line.startswith("Traceback")]

    def metric(self, name: str, **labels: str) -> float:
        """One sample of this process's /metrics (0 when it does not answer)."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5, trust_env=False).text
        except httpx.HTTPError:
            return 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items()):
                    return sample.value
        return 0.0


class Stack:
    """A fresh database, our own Redis, the proxy, and the daphne processes serving them."""

    def __init__(self, *, postgres_url: str = POSTGRES_URL, keep_logs: bool = False, sentinel: bool = False):
        self.admin_url = postgres_url.replace("postgres://", "postgresql://", 1)
        self.keep_logs = keep_logs
        self.work_dir = Path(tempfile.mkdtemp(prefix="imfaults-"))
        self.database = f"imchat_faults_{secrets.token_hex(6)}"
        self.redis = SentinelRedis(self.work_dir) if sentinel else RedisServer(self.work_dir)
        upstream = psycopg.conninfo.conninfo_to_dict(self.admin_url)
        self.pg_host, self.pg_port = upstream.get("host", "127.0.0.1"), int(upstream.get("port", 5432))
        if self.pg_host not in ("127.0.0.1", "localhost"):
            raise FaultRunError(f"PostgreSQL must be on 127.0.0.1, not {self.pg_host}")
        self.proxy = PostgresProxy(self.pg_port)
        self.daphnes: list[Daphne] = []
        self.created_database = False
        base = self.admin_url.rsplit("/", 1)[0]
        self.direct_url = f"{base}/{self.database}"
        self.env = {name: value for name, value in os.environ.items() if name not in SCRUBBED}
        self.env.update(
            DJANGO_SETTINGS_MODULE="imchat.settings", DJANGO_DEBUG="1", IM_VAR_DIR=str(self.work_dir),
            IM_JWT_SECRET="faults-" + secrets.token_hex(24), IM_JWT_ISSUER="imchat", LOG_LEVEL="WARNING",
            IM_REDIS_PREFIX=f"imfaults{secrets.token_hex(4)}", REDIS_URL=self.redis.url,
            IM_PRESENCE_REFRESH_SECONDS="1", IM_PRESENCE_TTL="3", PYTHONUNBUFFERED="1",
            IM_RATE_LIMIT=str(10**6), IM_RATE_BURST=str(10**6), IM_USER_RATE_LIMIT=str(10**6),
            IM_SHUTDOWN_SECONDS=str(SHUTDOWN_SECONDS),
        )

    async def start(self, processes: int = 2) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{self.database}"')
        self.created_database = True
        self.redis.start()
        await self.proxy.start()
        direct = {**self.env, "DATABASE_URL": self.direct_url.replace("postgresql://", "postgres://", 1)}
        await asyncio.to_thread(self._run, [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"], direct)
        for _ in range(processes):
            await self.start_daphne()

    def server_env(self) -> dict[str, str]:
        """What daphne sees: the database through the proxy."""
        url = f"postgres://postgres@127.0.0.1:{self.proxy.port}/{self.database}"
        user = psycopg.conninfo.conninfo_to_dict(self.admin_url).get("user")
        if user:
            url = f"postgres://{user}@127.0.0.1:{self.proxy.port}/{self.database}"
        return {**self.env, "DATABASE_URL": url}

    async def start_daphne(self) -> Daphne:
        port = free_port()
        log_path = self.work_dir / f"daphne-{port}.log"
        daphne = Daphne(port=port, process=self._spawn(port, log_path), log_path=log_path)
        self.daphnes.append(daphne)
        await asyncio.to_thread(wait_listening, port, daphne.process, "daphne", log_path)
        return daphne

    async def restart_daphne(self, daphne: Daphne) -> tuple[int | None, float]:
        """SIGTERM, wait for the exit, a new process on the same port: the old one's exit code and
        how long it took to exit."""
        exit_code, seconds = await asyncio.to_thread(daphne.terminate)
        daphne.process = self._spawn(daphne.port, daphne.log_path)
        await asyncio.to_thread(wait_listening, daphne.port, daphne.process, "daphne", daphne.log_path)
        return exit_code, seconds

    def _spawn(self, port: int, log_path: Path) -> subprocess.Popen:
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                [*DAPHNE, "-b", "127.0.0.1", "-p", str(port), "--websocket_timeout", "-1", "imchat.asgi:application"],
                cwd=ROOT, env=self.server_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

    def users(self, count: int) -> list[dict]:
        """Users with tokens, made by bench.fixtures in the servers' database."""
        direct = {**self.env, "DATABASE_URL": self.direct_url.replace("postgresql://", "postgres://", 1)}
        spec = json.dumps({"users": count, "prefix": secrets.token_hex(4)})
        output = self._run([sys.executable, "-m", "bench.fixtures", spec], direct)
        return json.loads(output.strip().splitlines()[-1])["users"]

    def _run(self, args: list[str], env: dict[str, str]) -> str:
        done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise FaultRunError(f"{' '.join(args[:4])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def db(self) -> psycopg.Connection:
        return psycopg.connect(self.direct_url, connect_timeout=5)

    async def close(self) -> None:
        for daphne in self.daphnes:
            stop_process(daphne.process)
        await self.proxy.stop()
        self.redis.stop()
        if self.created_database:
            try:
                with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            except psycopg.Error as error:
                print(f"could not drop {self.database}: {error}", file=sys.stderr)
        if not self.keep_logs:
            shutil.rmtree(self.work_dir, ignore_errors=True)


# --- What was sent, acked and delivered ----------------------------------------------------------


@dataclass
class Sent:
    client_msg_id: str
    sender: int
    recipient: int
    text: str
    phase: str
    created: float
    attempts: int = 0
    msg_id: int | None = None
    seq: int | None = None


@dataclass
class Ledger:
    sent: dict[str, Sent] = field(default_factory=dict)
    # (recipient, msg_id) -> how it arrived: {"live": n, "sync": n}
    delivered: dict[tuple[int, int], dict[str, int]] = field(default_factory=lambda: defaultdict(
        lambda: {"live": 0, "sync": 0}))
    duplicates: list[tuple[int, int, str]] = field(default_factory=list)  # (recipient, msg_id, how)
    anomalies: list[str] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # per phase counters
    phase: str = ""

    def count(self, what: str) -> None:
        self.events[f"{self.phase}:{what}"] += 1

    def acked(self, client_msg_id: str, result: dict) -> None:
        record = self.sent[client_msg_id]
        if record.msg_id is None:
            record.msg_id, record.seq = result["msg_id"], result["seq"]
        elif (record.msg_id, record.seq) != (result["msg_id"], result["seq"]):
            self.anomalies.append(f"{client_msg_id}: acked as {record.msg_id}/{record.seq}, then as "
                                  f"{result['msg_id']}/{result['seq']} (idempotency broken)")

    def arrived(self, recipient: int, message: dict, how: str) -> None:
        record = self.sent.get(message.get("client_msg_id") or "")
        if record is None:
            self.anomalies.append(f"user {recipient} got a message nobody sent: {message}")
            return
        if (record.recipient, record.text, record.sender) != (recipient, message["msg"], message["from_uid"]):
            self.anomalies.append(f"user {recipient} got {message} for {record}")
        if record.msg_id is not None and record.msg_id != message["msg_id"]:
            self.anomalies.append(f"{record.client_msg_id} arrived as msg {message['msg_id']}, "
                                  f"acked as {record.msg_id}")
        self.delivered[(recipient, message["msg_id"])][how] += 1


# --- Clients ---------------------------------------------------------------------------------------


def _settled(future: asyncio.Future) -> None:
    """A future the reader failed while its sender was raising on its own (the send to a closed
    socket): its exception is read here, so asyncio does not report it as never retrieved."""
    if future.done() and not future.cancelled():
        future.exception()


class Connection:
    """One WebSocket: replies matched by req_id, 200 pushes recorded (twice on one socket = duplicate)."""

    def __init__(self, ws, client: "ChatClient"):
        self.ws = ws
        self.client = client
        self.pending: dict[str, asyncio.Future] = {}
        self.pong: asyncio.Future | None = None
        self.pushed: set[int] = set()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                req_id = frame.get("req_id")
                if req_id is not None and req_id in self.pending:
                    future = self.pending.pop(req_id)
                    if not future.done():
                        future.set_result(frame)
                elif req_id is not None:  # the reply to a request that timed out
                    self.client.late_reply(frame)
                elif frame.get("code") == 200:
                    message = frame["result"]
                    if message["msg_id"] in self.pushed:
                        self.client.ledger.duplicates.append((self.client.uid, message["msg_id"], "live"))
                        continue
                    self.pushed.add(message["msg_id"])
                    self.client.received(message, "live")
                elif frame.get("code") == -1 and self.pong is not None and not self.pong.done():
                    self.pong.set_result(frame)
                elif frame.get("code") in (301, 302, 303, 304, 305, 306, 307):
                    continue
                else:
                    self.client.ledger.anomalies.append(f"user {self.client.uid}: unexpected frame {frame}")
        except (ConnectionClosed, OSError):
            pass
        finally:
            self.note_server_close()
            for future in list(self.pending.values()) + ([self.pong] if self.pong else []):
                if not future.done():
                    future.set_exception(ConnectionError("socket closed"))
            self.pending.clear()

    def note_server_close(self) -> None:
        """The close code of a socket the server closed (1006: dropped without a close frame)."""
        protocol = self.ws.protocol
        if protocol.close_rcvd is not None and protocol.close_rcvd_then_sent:
            self.client.ledger.count(f"server_close:{protocol.close_rcvd.code}")
        elif protocol.close_rcvd is None and protocol.close_sent is None:
            self.client.ledger.count("server_close:1006")

    @property
    def closed(self) -> bool:
        return self.reader.done()

    async def ping(self) -> None:
        self.pong = pong = asyncio.get_running_loop().create_future()
        try:
            await self.ws.send("ping")
            await asyncio.wait_for(pong, REPLY_SECONDS)
        finally:
            self.pong = None
            _settled(pong)

    async def request(self, cls: str, action: str, content: dict, req_id: str) -> dict:
        future = asyncio.get_running_loop().create_future()
        self.pending[req_id] = future
        try:
            await self.ws.send(json.dumps({"class": cls, "action": action, "content": content, "req_id": req_id}))
            return await asyncio.wait_for(future, REPLY_SECONDS)
        finally:
            self.pending.pop(req_id, None)
            _settled(future)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.ws.close(), 2)
        except Exception:  # noqa: BLE001 - the server may be gone
            pass
        self.reader.cancel()


class ChatClient:
    """One user with one socket at a time, chatting with one peer, with an outbox of unacked messages."""

    def __init__(self, user: dict, peer: dict, home: Daphne, stack: Stack, ledger: Ledger, interval: float):
        self.uid, self.token, self.peer = user["id"], user["token"], peer["id"]
        self.chat_id = f"{min(self.uid, self.peer)}_{max(self.uid, self.peer)}"
        self.home, self.stack, self.ledger, self.interval = home, stack, ledger, interval
        self.conn: Connection | None = None
        self.at: Daphne | None = None  # the process it is connected to
        self.outbox: deque[Sent] = deque()
        self.known: set[int] = set()  # seqs of this chat the client has (sent or received)
        self.cursor = 0  # the last seq up to which it has every message
        self.writing = True
        self.running = True
        self.counter = 0
        self.requests = 0
        self.task: asyncio.Task | None = None

    # -- what arrives

    def received(self, message: dict, how: str) -> None:
        if message["chat_id"] != self.chat_id:
            self.ledger.anomalies.append(f"user {self.uid} got a message of {message['chat_id']}")
            return
        self.learn(message["seq"])
        if message["from_uid"] != self.uid:
            self.ledger.arrived(self.uid, message, how)

    def late_reply(self, frame: dict) -> None:
        """A reply after its request timed out: an ack still counts (the resend gets the same one)."""
        self.ledger.count("late_replies")
        result = frame.get("result")
        if frame.get("code") == 1 and isinstance(result, dict) and result.get("client_msg_id") in self.ledger.sent:
            self.ledger.acked(result["client_msg_id"], result)
            self.learn(result["seq"])

    def learn(self, seq: int) -> None:
        self.known.add(seq)
        while self.cursor + 1 in self.known:
            self.cursor += 1

    # -- the socket

    def servers(self) -> list[Daphne]:
        """Where to connect: home first, then the others (a client's list of endpoints)."""
        return [self.home] + [daphne for daphne in self.stack.daphnes if daphne is not self.home]

    async def connect(self) -> None:
        """Connect (home first, then the others) with backoff until a socket answers, then catch up."""
        if self.conn is not None:
            await self.conn.close()
            self.conn = None
        delay = 0.1
        while self.running:
            for daphne in self.servers():
                try:
                    ws = await websockets.connect(f"{daphne.url}?token={self.token}", open_timeout=REPLY_SECONDS,
                                                  close_timeout=1, proxy=None, ping_interval=None, max_size=None)
                except (OSError, InvalidHandshake, asyncio.TimeoutError, ConnectionClosed):
                    continue
                conn = Connection(ws, self)
                try:
                    await conn.ping()
                    self.conn, self.at = conn, daphne
                    await self.catch_up()
                    return
                except (ConnectionError, ConnectionClosed, asyncio.TimeoutError, KeyError):
                    await conn.close()
                    self.conn = None
            self.ledger.count("connect_failures")
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, BACKOFF_MAX)

    async def catch_up(self) -> None:
        """chat.sync from the last seq this client has everything up to, page by page."""
        cursor = self.cursor
        while True:
            reply = await self._request("chat", "sync", {"chats": {self.chat_id: cursor}, "limit": 200})
            if reply.get("code") != 1:
                raise ConnectionError(f"sync answered {reply}")
            messages = reply["result"]["messages"]
            seen_here = set()
            for message in messages:
                if message["msg_id"] in seen_here:
                    self.ledger.duplicates.append((self.uid, message["msg_id"], "sync"))
                seen_here.add(message["msg_id"])
                self.received(message, "sync")
            if not reply["result"]["more"] or not messages:
                return
            cursor = messages[-1]["seq"]

    async def _request(self, cls: str, action: str, content: dict) -> dict:
        if self.conn is None or self.conn.closed:
            raise ConnectionError("not connected")
        self.requests += 1
        return await self.conn.request(cls, action, content, f"{self.uid}-{self.requests}")

    # -- sending

    def compose(self) -> Sent:
        self.counter += 1
        client_msg_id = f"{self.ledger.phase}:{self.uid}:{self.counter}"
        record = Sent(client_msg_id, self.uid, self.peer, f"m{self.counter} from {self.uid} ({self.ledger.phase})",
                      self.ledger.phase, time.monotonic())
        self.ledger.sent[client_msg_id] = record
        return record

    async def run(self) -> None:
        await self.connect()
        backoff = 0.1
        while self.running:
            if not self.outbox:
                if not self.writing:
                    await asyncio.sleep(0.05)
                    continue
                self.outbox.append(self.compose())
            record = self.outbox[0]
            record.attempts += 1
            if record.attempts > 1:
                self.ledger.count("resends")
            content = {"to_uid": self.peer, "chat_type": 1, "msg_type": 1, "msg": record.text,
                       "chat_id": self.chat_id, "shop_id": 0, "role_type": 0, "client_msg_id": record.client_msg_id}
            try:
                reply = await self._request("chat", "sendMsg", content)
            except (ConnectionError, ConnectionClosed, asyncio.TimeoutError) as error:
                self.ledger.count("timeouts" if isinstance(error, asyncio.TimeoutError) else "closed_sockets")
                await self.connect()
                continue
            code = reply.get("code")
            if code == 1:
                self.ledger.acked(record.client_msg_id, reply["result"])
                self.learn(reply["result"]["seq"])
                self.outbox.popleft()
                backoff = 0.1
                await asyncio.sleep(self.interval * (0.5 + random.random()))
            elif code == -500:
                self.ledger.count("server_faults")
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, BACKOFF_MAX)
            else:
                self.ledger.anomalies.append(f"user {self.uid}: sendMsg {record.client_msg_id} answered {reply}")
                self.outbox.popleft()

    def start(self) -> None:
        self.task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        self.running = False
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 3)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                self.task.cancel()
        if self.conn is not None:
            await self.conn.close()


# --- One run ---------------------------------------------------------------------------------------


@dataclass
class Counts:
    fault: str
    sent: int
    acked: int
    delivered: int
    duplicates: int
    lost: int
    stored_twice: int
    unacked: int = 0
    stored_unacked: int = 0
    delivered_live: int = 0
    redelivered: int = 0
    live_after_recovery: str = ""
    resends: int = 0
    server_faults: int = 0
    timeouts: int = 0
    closed_sockets: int = 0
    connect_failures: int = 0
    seq_gaps: int = 0
    presence: str = ""
    anomalies: int = 0
    server_tracebacks: int = 0
    server_log_lines: int = 0  # log records (WARNING+) and tracebacks the servers wrote during the phase
    outages_counted: int = 0  # imchat_dependency_outages_total of the fault's dependency, over the live servers
    server_closes: str = ""  # close code:count of the sockets the servers closed
    exit_codes: str = ""  # restart: each SIGTERMed process's exit code and seconds to exit
    master_moved: str = ""  # sentinel: the master's port before -> after
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicates == 0 and self.stored_twice == 0

    def line(self) -> str:
        return " ".join(f"{name}={value}" for name, value in asdict(self).items())


@dataclass
class Options:
    pairs: int = 25
    faults: tuple[str, ...] = ONE_REDIS_FAULTS
    interval: float = 0.5  # seconds between a client's messages
    before: float = 3.0  # traffic before each fault
    after: float = 5.0  # traffic after the fault is over
    churn: int = 5  # clients that lose their socket when Redis or PostgreSQL goes away
    between_restarts: float = 2.0  # traffic between two processes' restarts
    redis_down: float = 2.0
    postgres_down: float = 3.0
    drain: float = 45.0
    postgres_url: str = POSTGRES_URL
    keep_logs: bool = False
    progress: bool = True
    limit: float = 170.0  # the whole run stops (and cleans up) after this many seconds


class Run:
    def __init__(self, options: Options):
        self.options = options
        self.stack = Stack(postgres_url=options.postgres_url, keep_logs=options.keep_logs,
                           sentinel="sentinel" in options.faults)
        self.notes: dict[str, str] = {}
        self.ledger = Ledger()
        self.clients: list[ChatClient] = []
        self.recovered_at = 0.0
        self.log_lines: dict[str, list[str]] = {}  # per fault: what the servers logged

    def say(self, text: str) -> None:
        if self.options.progress:
            print(text, file=sys.stderr, flush=True)

    async def setup(self) -> None:
        self.say(f"starting PostgreSQL database, redis-server, proxy and 2 daphne processes in {self.stack.work_dir}")
        await self.stack.start(2)
        users = await asyncio.to_thread(self.stack.users, 2 * self.options.pairs)
        first, second = self.stack.daphnes
        for index in range(self.options.pairs):
            a, b = users[2 * index], users[2 * index + 1]
            # each pair is split over the two processes, alternating which side is where
            home_a, home_b = (first, second) if index % 2 == 0 else (second, first)
            self.clients.append(ChatClient(a, b, home_a, self.stack, self.ledger, self.options.interval))
            self.clients.append(ChatClient(b, a, home_b, self.stack, self.ledger, self.options.interval))
        self.ledger.phase = "connect"
        await asyncio.gather(*(client.connect() for client in self.clients))
        for client in self.clients:
            client.start()

    # -- the faults

    async def churn(self) -> None:
        """Some clients lose their socket as the fault starts (a phone changing networks) and keep
        trying to reconnect while it lasts."""
        for client in random.sample(self.clients, self.options.churn):
            if client.conn is not None:
                await client.conn.close()
        self.ledger.events[f"{self.ledger.phase}:churned"] += self.options.churn

    async def fault_redis(self) -> None:
        self.say(f"  killing redis-server for {self.options.redis_down}s; {self.options.churn} clients reconnect")
        self.stack.redis.kill()
        await self.churn()
        await asyncio.sleep(self.options.redis_down)
        await asyncio.to_thread(self.stack.redis.start)

    async def fault_daphne(self) -> None:
        victim = self.stack.daphnes[0]
        self.say(f"  SIGKILL daphne on :{victim.port} ({sum(c.home is victim for c in self.clients)} clients on it)")
        victim.kill()
        self.stack.daphnes.remove(victim)
        self.victim = victim

    async def fault_restart(self) -> None:
        """A rolling restart: each process in turn drains, exits, and a new one takes its port."""
        exits = []
        for daphne in list(self.stack.daphnes):
            on_it = sum(client.at is daphne for client in self.clients)
            self.say(f"  SIGTERM daphne on :{daphne.port} ({on_it} clients on it); a new one takes the port")
            exit_code, seconds = await self.stack.restart_daphne(daphne)
            exits.append(f"{exit_code}/{seconds:.1f}s")
            await asyncio.sleep(self.options.between_restarts)
        self.notes["exit_codes"] = ",".join(exits)

    async def fault_sentinel(self) -> None:
        self.say(f"  SENTINEL FAILOVER; {self.options.churn} clients reconnect meanwhile")
        failover = asyncio.create_task(asyncio.to_thread(self.stack.redis.failover))
        await self.churn()
        old, new = await failover
        self.notes["master_moved"] = f"{old}->{new}"

    async def after_daphne(self) -> None:
        """A replacement process; the killed one's clients move to it (a clean reconnect and a sync)."""
        replacement = await self.stack.start_daphne()
        for client in self.clients:
            if client.home is self.victim:
                client.home = replacement
                await client.connect()

    async def fault_postgres(self) -> None:
        self.say(f"  PostgreSQL refuses connections for {self.options.postgres_down}s "
                 f"({len(self.stack.proxy.open)} open connections dropped); {self.options.churn} clients reconnect")
        outage = asyncio.create_task(self.stack.proxy.outage(self.options.postgres_down))
        await asyncio.sleep(0)
        await self.churn()
        await outage

    # -- one phase

    async def phase(self, fault: str) -> Counts:
        started = time.monotonic()
        self.ledger.phase = fault
        for client in self.clients:
            client.writing = True
        await asyncio.sleep(self.options.before)
        await getattr(self, f"fault_{fault}")()
        self.recovered_at = time.monotonic()
        await asyncio.sleep(self.options.after)
        for client in self.clients:
            client.writing = False
        unacked = await self.drain()
        await asyncio.sleep(1.0)  # pushes of the last acks
        await self.catch_up_all()
        counts = await asyncio.to_thread(self.count, fault, unacked)
        counts.presence = await asyncio.to_thread(self.presence)
        counts.exit_codes = self.notes.pop("exit_codes", "")
        counts.master_moved = self.notes.pop("master_moved", "")
        counts.seconds = round(time.monotonic() - started, 1)
        if fault == "daphne":
            await self.after_daphne()
        return counts

    async def drain(self) -> int:
        deadline = time.monotonic() + self.options.drain
        while time.monotonic() < deadline:
            waiting = sum(len(client.outbox) for client in self.clients)
            if not waiting:
                return 0
            await asyncio.sleep(0.1)
        return sum(len(client.outbox) for client in self.clients)

    async def catch_up_all(self) -> None:
        async def one(client: ChatClient) -> None:
            for _ in range(3):
                try:
                    await client.catch_up()
                    return
                except (ConnectionError, ConnectionClosed, asyncio.TimeoutError):
                    await client.connect()
            self.ledger.anomalies.append(f"user {client.uid}: could not sync at the end of {self.ledger.phase}")

        await asyncio.gather(*(one(client) for client in self.clients))

    def count(self, fault: str, unacked: int) -> Counts:
        ledger = self.ledger
        records = [record for record in ledger.sent.values() if record.phase == fault]
        acked = [record for record in records if record.msg_id is not None]
        arrived = [record for record in acked if (record.recipient, record.msg_id) in ledger.delivered]
        live = [record for record in arrived if ledger.delivered[(record.recipient, record.msg_id)]["live"]]
        # pushed live to two sockets of the recipient (before and after a reconnect): not a duplicate
        # by the definition above (one socket), but worth knowing
        redelivered = [record for record in arrived
                       if ledger.delivered[(record.recipient, record.msg_id)]["live"] > 1]
        later = [record for record in acked if record.created > self.recovered_at + 2.0]
        later_live = [record for record in later
                      if ledger.delivered.get((record.recipient, record.msg_id), {}).get("live")]
        msg_ids = {record.msg_id for record in acked}
        duplicates = sum(1 for _, msg_id, _ in ledger.duplicates if msg_id in msg_ids)
        with self.stack.db() as db:
            stored_twice = db.execute(
                "SELECT count(*) FROM (SELECT sender_id, client_msg_id FROM chat_message WHERE client_msg_id IS NOT "
                "NULL GROUP BY sender_id, client_msg_id HAVING count(*) > 1) twice").fetchone()[0]
            stored = dict(db.execute("SELECT client_msg_id, id FROM chat_message WHERE client_msg_id LIKE %s",
                                     [f"{fault}:%"]).fetchall())
            gaps = db.execute(
                "SELECT count(*) FROM (SELECT c.id FROM chat_conversation c LEFT JOIN chat_message m "
                "ON m.conversation_id = c.id GROUP BY c.id, c.last_seq "
                "HAVING count(m.id) <> c.last_seq OR coalesce(max(m.seq), 0) <> c.last_seq) broken").fetchone()[0]
        for record in acked:
            if stored.get(record.client_msg_id) != record.msg_id:
                ledger.anomalies.append(f"{record.client_msg_id}: acked as {record.msg_id}, stored as "
                                        f"{stored.get(record.client_msg_id)}")
        acked_ids = {record.client_msg_id for record in acked}
        lines = [line for daphne in [*self.stack.daphnes, getattr(self, "victim", None)] if daphne is not None
                 for line in daphne.new_log_lines()]
        self.log_lines[fault] = lines
        dependency = DEPENDENCY_OF.get(fault)
        outages = int(sum(daphne.metric("imchat_dependency_outages_total", dependency=dependency)
                          for daphne in self.stack.daphnes)) if dependency else 0
        counts = Counts(
            fault=fault, sent=len(records), acked=len(acked), delivered=len(arrived), duplicates=duplicates,
            lost=len(acked) - len(arrived), stored_twice=stored_twice, unacked=unacked,
            stored_unacked=len(set(stored) - acked_ids), delivered_live=len(live), redelivered=len(redelivered),
            live_after_recovery=f"{len(later_live)}/{len(later)}",
            seq_gaps=gaps, anomalies=len(ledger.anomalies),
            server_tracebacks=sum(line.startswith("Traceback") for line in lines),
            server_log_lines=len(lines), outages_counted=outages,
            server_closes=",".join(f"{name.rsplit(':', 1)[1]}:{value}" for name, value in sorted(ledger.events.items())
                                   if name.startswith(f"{fault}:server_close:")),
            **{name: ledger.events.get(f"{fault}:{name}", 0)
               for name in ("resends", "server_faults", "timeouts", "closed_sockets", "connect_failures")},
        )
        return counts

    def presence(self) -> str:
        """Sockets presence counts as live (in Redis, on a live process) / sockets the clients hold."""
        store = redis_client.sync_client(self.stack.redis.url, socket_connect_timeout=2, socket_timeout=5)
        prefix = self.stack.env["IM_REDIS_PREFIX"]
        try:
            live = 0
            for client in self.clients:
                sockets = store.hgetall(f"{prefix}:presence:user:{client.uid}")
                live += sum(1 for process in sockets.values()
                            if store.exists(f"{prefix}:presence:process:{process.decode()}"))
        finally:
            store.close()
        connected = sum(1 for client in self.clients if client.conn is not None and not client.conn.closed)
        return f"{live}/{connected}"

    async def close(self) -> None:
        await asyncio.gather(*(client.stop() for client in self.clients), return_exceptions=True)
        await self.stack.close()


async def run(options: Options | None = None) -> tuple[list[Counts], list[str], dict[str, list[str]]]:
    """Set up, inject each fault in turn, count; everything is stopped before returning. The counts,
    the anomalies, and per fault what the servers logged."""
    options = options or Options()
    unknown = set(options.faults) - set(FAULTS)
    if unknown:
        raise FaultRunError(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
    if {"redis", "sentinel"} <= set(options.faults):
        raise FaultRunError("`redis` kills the one Redis and `sentinel` runs on a Sentinel group: run them apart")
    chaos = Run(options)
    results: list[Counts] = []

    async def body() -> None:
        await chaos.setup()
        for fault in options.faults:
            chaos.say(f"fault: {fault}")
            counts = await chaos.phase(fault)
            chaos.say("  " + counts.line())
            for line in chaos.log_lines.get(fault, []):
                chaos.say(f"  | {line}")
            results.append(counts)

    try:
        await asyncio.wait_for(body(), options.limit)
    except asyncio.TimeoutError:
        raise FaultRunError(f"the run did not finish within {options.limit}s; done: "
                            f"{[counts.line() for counts in results]}") from None
    finally:
        await chaos.close()
    return results, chaos.ledger.anomalies, chaos.log_lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=Options.pairs)
    parser.add_argument("--faults", default=",".join(ONE_REDIS_FAULTS),
                        help=f"comma-separated, in order, of {', '.join(FAULTS)}")
    parser.add_argument("--interval", type=float, default=Options.interval)
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--json", action="store_true", help="one JSON object per fault instead of key=value")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    options = Options(pairs=args.pairs, faults=tuple(filter(None, args.faults.split(","))), interval=args.interval,
                      postgres_url=args.postgres_url, keep_logs=args.keep_logs, progress=not args.quiet)
    results, anomalies, _ = asyncio.run(run(options))
    for counts in results:
        print(json.dumps(asdict(counts)) if args.json else counts.line())
    for anomaly in anomalies[:20]:
        print(f"anomaly: {anomaly}", file=sys.stderr)
    return 0 if all(counts.ok for counts in results) else 1


if __name__ == "__main__":
    sys.exit(main())
