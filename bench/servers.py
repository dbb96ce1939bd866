"""The servers a benchmark runs against: their environment, processes, CPU pinning and resource use.

A `Deployment` is one database + channel layer (from the command's own environment, like
production: DATABASE_URL/REDIS_URL, else a throwaway SQLite file and the in-memory layer). It
migrates, makes fixtures in a subprocess with the servers' environment, starts ours (on daphne or
uvicorn), the naive baseline (daphne) or the plain relay, and kills every process it started when closed.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAPHNE = str(BIN / "daphne") if (BIN / "daphne").exists() else shutil.which("daphne") or "daphne"
STARTUP_SECONDS = 30
COMMAND_SECONDS = 300

SETTINGS = {"imchat": "imchat.settings", "naive": "bench.naive.settings"}
ASGI = {"imchat": "imchat.asgi:application", "naive": "bench.naive.asgi:application"}
SERVERS = ("daphne", "uvicorn")  # what ours can run on (--server)


def uvicorn_command(port: int, app: str = ASGI["imchat"]) -> list[str]:
    """uvicorn as production would run it (uvloop, httptools, websockets' sans-I/O protocol), with the
    WebSocket settings of our daphne: a ping every 20 s, dropped after 30 s without a pong (daphne's
    defaults), no compression (autobahn in daphne offers none) and no frame limit below the app's own
    (IM_MAX_FRAME_BYTES: it answers a too-large frame itself); no lifespan (Channels has none)."""
    return [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio",
            "--ws-ping-interval", "20", "--ws-ping-timeout", "30", "--ws-per-message-deflate", "false",
            "--ws-max-size", str(16 * 2**20), "--lifespan", "off", app]


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parse_cpus(text: str | None) -> set[int] | None:
    """"0", "0,1", "0-3"; "none" or "" means no pinning."""
    if not text or text == "none":
        return None
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def default_cpus() -> tuple[set[int] | None, set[int] | None]:
    """Servers on every core but the last, the load generator on the last (with 2+ cores)."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return set(available[:-1]), {available[-1]}


@dataclass
class Server:
    """One server process (daphne or relay)."""

    kind: str
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.kind} on :{self.port} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise BenchError(f"{self.kind} on :{self.port} not listening after {STARTUP_SECONDS}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def log_counts(self) -> dict[str, int]:
        """What the server complained about: errors, warnings, and channel-layer capacity drops."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return {}
        lines = text.splitlines()
        return {  # the app's lines ("... ERROR logger: ...") and uvicorn's own ("ERROR:    ...")
            "errors": sum(1 for line in lines if " ERROR " in line or line.startswith("ERROR:")),
            "tracebacks": sum(1 for line in lines if line.startswith("Traceback")),
            "warnings": sum(1 for line in lines if " WARNING " in line or line.startswith("WARNING:")),
            "over_capacity": sum(1 for line in lines if "over capacity" in line),
        }


@dataclass
class Deployment:
    """Where the servers run: the environment they share and every process started for it."""

    base_env: dict[str, str]
    server_cpus: set[int] | None = None
    keep_logs: bool = False
    own_servers: bool = True
    servers: list[Server] = field(default_factory=list)
    redis_prefixes: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.work_dir = Path(tempfile.mkdtemp(prefix="imbench-"))
        env = dict(self.base_env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if not self.own_servers:
            pass  # --target: fixtures must see exactly what the running server sees
        elif not env.get("DATABASE_URL"):
            # A throwaway SQLite file: the benchmark never writes into the developer's database.
            env["IM_VAR_DIR"] = str(self.work_dir)
        if self.own_servers:
            # As production runs them, whatever the command's own DEBUG (DJANGO_DEBUG=1 lets the
            # command start without secrets): no query log, no debug pages, throwaway secrets.
            env["DJANGO_DEBUG"] = "0"
            for name in ("DJANGO_SECRET_KEY", "IM_JWT_SECRET"):
                if len(env.get(name, "")) < 50:
                    env[name] = "imbench-" + secrets.token_hex(24)
            env.setdefault("IM_HTTPS", "0")  # the benchmark speaks plain HTTP to its own servers
        if self.own_servers:
            # The product's request rate limits are policy, not capacity: one benchmark pair sends
            # hundreds of messages a second. Set these variables to measure with the limits on.
            for name in ("IM_RATE_LIMIT", "IM_RATE_BURST", "IM_USER_RATE_LIMIT"):
                env.setdefault(name, str(10**6))
        self.env = env
        self.uses_sqlite = not env.get("DATABASE_URL", "").startswith(("postgres", "pgsql"))
        self.has_redis = bool(env.get("REDIS_URL"))

    def env_for(self, kind: str, redis_prefix: str | None = None) -> dict[str, str]:
        env = dict(self.env)
        if kind in SETTINGS:
            env["DJANGO_SETTINGS_MODULE"] = SETTINGS[kind]
        if redis_prefix:
            env["IM_REDIS_PREFIX"] = redis_prefix
        return env

    def run(self, args: list[str], *, kind: str = "imchat", timeout: float = COMMAND_SECONDS) -> str:
        done = subprocess.run(args, cwd=ROOT, env=self.env_for(kind), capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(args[:4])} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def migrate(self, *, with_naive: bool) -> None:
        self.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"],
                 kind="naive" if with_naive else "imchat")

    def fixtures(self, **spec) -> dict:
        """Users with tokens (and a group or a shop with online agents) in the servers' database."""
        spec.setdefault("prefix", secrets.token_hex(4))
        extra = {"IM_MAX_GROUP_MEMBERS": str(max(int(self.env.get("IM_MAX_GROUP_MEMBERS", "500")), spec["users"]))}
        done = subprocess.run([sys.executable, "-m", "bench.fixtures", json.dumps(spec)], cwd=ROOT,
                              env={**self.env_for("imchat"), **extra}, capture_output=True, text=True,
                              timeout=COMMAND_SECONDS)
        if done.returncode != 0:
            raise BenchError(f"making fixtures failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def start(self, kind: str, count: int, *, group_members: int = 0, server: str = "daphne") -> list[Server]:
        """`count` processes of `kind` (imchat, naive or relay) on free ports, pinned, listening; ours on
        `server` (daphne or uvicorn)."""
        prefix = f"imbench{secrets.token_hex(4)}"
        self.redis_prefixes.append(prefix)
        env = self.env_for(kind, prefix)
        if kind == "relay":
            from django.conf import settings

            # The relay has no Django: it checks tokens with the secret the fixtures minted them with.
            env.setdefault("IM_JWT_SECRET", settings.IM_JWT_SECRET)
            env.setdefault("IM_JWT_ISSUER", settings.IM_JWT_ISSUER)
        if group_members:
            env["IM_MAX_GROUP_MEMBERS"] = str(max(int(env.get("IM_MAX_GROUP_MEMBERS", "500")), group_members))
        started = []
        for index in range(count):
            port = free_port()
            if kind == "relay":
                args = [sys.executable, "-m", "bench.relay", "--port", str(port)]
            elif kind == "imchat" and server == "uvicorn":
                args = uvicorn_command(port)
            else:
                # Ours as production starts it (daphne on uvloop); the naive one with the stock command.
                launcher = [sys.executable, "-m", "imchat.serve"] if kind == "imchat" else [DAPHNE]
                args = [*launcher, "-b", "127.0.0.1", "-p", str(port), "--websocket_timeout", "-1", ASGI[kind]]
            cpus = self._cpus_of(index)
            log_path = self.work_dir / f"{kind}-{port}.log"
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    preexec_fn=(lambda cpus=cpus: os.sched_setaffinity(0, cpus)) if cpus else None,
                )
            server = Server(kind=kind, port=port, process=process, log_path=log_path)
            self.servers.append(server)
            started.append(server)
        for server in started:
            server.wait_ready()
        return started

    def _cpus_of(self, index: int) -> set[int] | None:
        """Process k gets the k-th server core (round-robin); one core: every process on it."""
        if not self.server_cpus:
            return None
        ordered = sorted(self.server_cpus)
        return {ordered[index % len(ordered)]}

    def stop(self, servers: list[Server] | None = None) -> None:
        for server in servers if servers is not None else self.servers:
            try:
                server.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                pass

    def close(self) -> None:
        self.stop()
        self._clean_redis()
        if not self.keep_logs:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def _clean_redis(self) -> None:
        """Drop the keys of this run's channel layers and presence (their own prefixes)."""
        if not self.has_redis or not self.redis_prefixes:
            return
        try:
            import redis

            store = redis.Redis.from_url(self.env["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5)
            for prefix in self.redis_prefixes:
                keys = list(store.scan_iter(match=f"{prefix}*", count=1000))
                for start in range(0, len(keys), 1000):
                    store.delete(*keys[start:start + 1000])
            store.close()
        except Exception:  # noqa: BLE001 - cleaning is best effort
            pass


def pid_listening_on(port: int) -> int | None:
    """The process that listens on a local port (for --target), if this user may see it."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return conn.pid
    except (psutil.AccessDenied, PermissionError):
        return None
    return None


class Monitor:
    """CPU time and memory of the server processes, and of PostgreSQL and Redis beside them."""

    SERVICE_NAMES = {"postgres": "db", "redis-server": "redis"}

    def __init__(self, pids: list[int], metrics_urls: list[str] = ()):
        self.metrics_urls = list(metrics_urls)  # ours: /metrics, for the batches stored
        self.processes = []
        for pid in pids:
            try:
                self.processes.append(psutil.Process(pid))
            except psutil.Error:
                pass
        self.rss_peak = 0
        self._batch_mark: dict[str, float] = {}
        self._mark: tuple[float, float, dict[str, dict[int, float]]] | None = None

    def rss(self) -> int:
        total = 0
        for process in self.processes:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                pass
        self.rss_peak = max(self.rss_peak, total)
        return total

    def _server_cpu(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the server processes, all threads."""
        user = system = 0.0
        for process in self.processes:
            try:
                times = process.cpu_times()
                user += times.user
                system += times.system
            except psutil.Error:
                pass
        return user, system

    def _service_cpu(self) -> dict[str, dict[int, float]]:
        found: dict[str, dict[int, float]] = {"db": {}, "redis": {}}
        for process in psutil.process_iter(["name", "cpu_times"]):
            role = self.SERVICE_NAMES.get((process.info.get("name") or "").split(":")[0])
            times = process.info.get("cpu_times")
            if role and times is not None:
                found[role][process.pid] = times.user + times.system
        return found

    # Histograms of every batch (chat/dispatch.py, chat/messages.py), read as mean ms a batch.
    BATCH_TIMES = {"database_thread": "imchat_send_batch_seconds", "hops": "imchat_send_batch_hops_seconds",
                   "store": "imchat_store_seconds"}

    def _batches(self) -> dict[str, float]:
        """The sums and counts of chat.sendMsg's batch histograms so far, over the servers' /metrics."""
        wanted = {f"{name}_{part}" for name in ("imchat_send_batch_size", *self.BATCH_TIMES.values())
                  for part in ("sum", "count")}
        totals = dict.fromkeys(wanted, 0.0)
        for url in self.metrics_urls:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    text = response.read().decode()
            except OSError:
                continue
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name in wanted:
                        totals[sample.name] += sample.value
        return totals

    def start(self) -> None:
        self._batch_mark = self._batches()
        self._mark = (time.perf_counter(), self._server_cpu(), self._service_cpu())

    def stop(self) -> dict:
        """CPU % (100 = one core) of the servers, the database and Redis since start(); memory."""
        started, server_cpu, services = self._mark or (time.perf_counter(), self._server_cpu(), self._service_cpu())
        wall = max(time.perf_counter() - started, 1e-9)
        user, system = (end - begin for end, begin in zip(self._server_cpu(), server_cpu))
        server_seconds = user + system
        now = self._service_cpu()
        figures = {
            "processes": len(self.processes),
            "cpu_pct": round(100 * server_seconds / wall, 1),
            "cpu_system_pct": round(100 * system / wall, 1),
            "cpu_seconds": round(server_seconds, 3),
            "rss_mb": round(self.rss() / 2**20, 1),
            "rss_peak_mb": round(self.rss_peak / 2**20, 1),
        }
        if self.metrics_urls:
            now_totals, mark = self._batches(), self._batch_mark
            grew = {key: value - mark.get(key, 0.0) for key, value in now_totals.items()}
            batches = grew.get("imchat_send_batch_size_count", 0.0)
            figures["batches_per_s"] = round(batches / wall, 1)
            figures["messages_per_batch"] = round(grew["imchat_send_batch_size_sum"] / batches, 2) if batches else None
            figures["batch_ms"] = {label: round(1000 * grew[f"{name}_sum"] / grew[f"{name}_count"], 2)
                                   if grew.get(f"{name}_count") else None for label, name in self.BATCH_TIMES.items()}
        for role in ("db", "redis"):
            seconds = sum(value - services[role].get(pid, 0.0) for pid, value in now[role].items())
            figures[f"{role}_cpu_pct"] = round(100 * seconds / wall, 1) if now[role] else None
        return figures
