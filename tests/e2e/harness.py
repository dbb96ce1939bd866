"""End-to-end harness: real daphne processes, real databases and layers, real socket clients.

A `Site` is one deployment: an environment (database, channel layer, settings) and the daphne
processes serving it. Users and tokens are made by the project's own management commands in
subprocesses. `Client` wraps one WebSocket; every wait is bounded, so a broken server fails a test
instead of hanging it. Tests are plain sync functions that run their coroutine with `asyncio.run`.
"""

import asyncio
import atexit
import functools
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest
import redis
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

ROOT = Path(__file__).resolve().parents[2]
# The project's venv when there is one (daphne is its console script), else this interpreter's.
BIN = ROOT / ".venv" / "bin" if (ROOT / ".venv" / "bin" / "daphne").exists() else Path(sys.executable).parent
PYTHON = str(BIN / "python")
DAPHNE = [PYTHON, "-m", "imchat.serve"]  # daphne on uvloop, as `make run` and production start it
MANAGE = str(ROOT / "manage.py")

# This run's own secrets: a server under test never accepts a value written anywhere.
JWT_SECRET = secrets.token_urlsafe(48)
SECRET_KEY = secrets.token_urlsafe(48)
JWT_ISSUER = "imchat"
STARTUP_SECONDS = 20
WAIT_SECONDS = 8
COMMAND_SECONDS = 60

# Codes the server pushes on its own; every other code is the reply to a request (PROTOCOL.md 2).
PUSH_CODES = frozenset({200, 301, 302, 303, 304, 305, 306, 307})

# Environment that must not leak from the developer's shell into a server under test.
SCRUBBED = ("DATABASE_URL", "REDIS_URL", "IM_REDIS_PREFIX", "IM_PUBLIC_URL", "IM_VAR_DIR", "ALLOWED_HOSTS",
            "CORS_ALLOWED_ORIGINS", "IM_JWT_AUTO_CREATE", "IM_PORT", "DJANGO_SECRET_KEY", "DJANGO_DEBUG", "IM_HTTPS")


@functools.cache
def collected_static() -> str:
    """`manage.py collectstatic` once per test run, as a deployment does before it starts (without
    DEBUG the server serves static files, the default avatar among them, from there only)."""
    root = tempfile.mkdtemp(prefix="imchat-static-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    env = {name: value for name, value in os.environ.items() if name not in SCRUBBED}
    env.update(DJANGO_SETTINGS_MODULE="imchat.settings", DJANGO_SECRET_KEY=SECRET_KEY, IM_JWT_SECRET=JWT_SECRET,
               IM_VAR_DIR=root, IM_STATIC_ROOT=root)
    subprocess.run([PYTHON, MANAGE, "collectstatic", "--noinput"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=COMMAND_SECONDS)
    return root


SQLITE_NAME = "imchat.sqlite3"  # a site's database without DATABASE_URL: IM_VAR_DIR/imchat.sqlite3 (settings)


@functools.cache
def migrated_sqlite() -> Path:
    """A SQLite database migrated once per test run, by `manage.py migrate` as a site would."""
    root = tempfile.mkdtemp(prefix="imchat-migrated-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    Site(env=base_env(root)).manage("migrate", "--noinput")
    return Path(root) / SQLITE_NAME


def base_env(var_dir: str, **extra: str) -> dict[str, str]:
    """A server as production runs it (DEBUG off, secrets set, static files collected), over plain
    HTTP as the tests speak."""
    env = {name: value for name, value in os.environ.items() if name not in SCRUBBED}
    env.update(
        DJANGO_SETTINGS_MODULE="imchat.settings",
        IM_STATIC_ROOT=collected_static(),
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=SECRET_KEY,
        IM_HTTPS="0",
        IM_JWT_SECRET=JWT_SECRET,
        IM_JWT_ISSUER=JWT_ISSUER,
        IM_VAR_DIR=var_dir,
        IM_PRESENCE_REFRESH_SECONDS="1",
        IM_PRESENCE_TTL="3",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def craft_token(user_id: Any, *, ttl: int = 3600, secret: str = JWT_SECRET, issuer: str = JWT_ISSUER,
                algorithm: str = "HS256", **claims: Any) -> str:
    """A JWT built outside the server (as the mall would), to test what the server accepts."""
    now = int(time.time())
    payload = {"iss": issuer, "iat": now, "exp": now + ttl, "data": {"id": user_id}, **claims}
    return jwt.encode(payload, secret if algorithm != "none" else None, algorithm=algorithm)


@dataclass(frozen=True)
class User:
    id: int
    name: str
    token: str


@dataclass
class Server:
    """One daphne process."""

    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def socket_url(self, token: str | None = None, path: str = "/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}" + (f"?token={token}" if token is not None else "")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        last_error = "never answered"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"daphne on :{self.port} exited with {self.process.returncode}:\n{self.log()}",
                            pytrace=False)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                status = httpx.get(self.http_url + "/", timeout=2, trust_env=False).status_code
                if status == 200:
                    return
                last_error = f"GET / answered {status}"
            except (OSError, httpx.HTTPError) as error:
                last_error = repr(error)
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"daphne on :{self.port} not ready after {STARTUP_SECONDS}s ({last_error}):\n{self.log()}",
                    pytrace=False)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill at once, as a crash would: no clean disconnect of its sockets."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


@dataclass
class Site:
    """One deployment: its environment and the daphne processes serving it."""

    env: dict[str, str]
    servers: list[Server] = field(default_factory=list)
    _pool: list[User] = field(default_factory=list)

    def manage(self, *args: str) -> str:
        """Run manage.py with this site's environment; its stdout (failing the test on an error)."""
        done = subprocess.run([PYTHON, MANAGE, *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=COMMAND_SECONDS)
        if done.returncode != 0:
            pytest.fail(f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}",
                        pytrace=False)
        return done.stdout

    def migrate(self) -> None:
        """The schema, as `manage.py migrate` makes it; a SQLite site starts from a copy of a
        database migrated once per test run (migrating took ~4 s a site, a minute of the suite)."""
        if "DATABASE_URL" in self.env:
            self.manage("migrate", "--noinput")
        else:
            for path in migrated_sqlite().parent.glob(f"{SQLITE_NAME}*"):  # with its -wal file, if any
                shutil.copyfile(path, Path(self.env["IM_VAR_DIR"]) / path.name)

    def start(self, count: int = 1, *, server: str = "daphne", options: tuple[str, ...] = ()) -> list[Server]:
        """Start `count` daphne processes (or uvicorn ones, as `imbench --server uvicorn` runs them)
        on free ports, with daphne's `options` if any, and wait until each serves GET /."""
        from bench.servers import uvicorn_command

        program = server
        started = []
        for _ in range(count):
            port = free_port()
            log_path = Path(self.env["IM_VAR_DIR"]) / f"{program}-{port}.log"
            command = uvicorn_command(port) if program == "uvicorn" else [
                *DAPHNE, "-b", "127.0.0.1", "-p", str(port), "--websocket_timeout", "-1", *options,
                "imchat.asgi:application"]
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    command,
                    cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )
            server = Server(port=port, process=process, log_path=log_path)
            self.servers.append(server)
            started.append(server)
        for server in started:
            server.wait_ready()
        return started

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def create_users(self, count: int) -> list[User]:
        """Users with tokens, made in one `manage.py shell` (one command per user costs ~0.5 s)."""
        names = [f"e2e{secrets.token_hex(3)}n{i}" for i in range(count)]
        code = (
            "import json\n"
            "from accounts.services import user_create\n"
            "from accounts.tokens import token_mint\n"
            "out = []\n"
            f"for name in {names!r}:\n"
            "    user = user_create(username=name, nickname=name)\n"
            "    out.append({'id': user.pk, 'name': name, 'token': token_mint(user_id=user.pk)})\n"
            "print(json.dumps(out))\n"
        )
        output = self.manage("shell", "-c", code).strip().splitlines()[-1]
        return [User(**row) for row in json.loads(output)]

    def users(self, count: int) -> list[User]:
        """`count` users nobody else in this run has used (taken from a batch made up front)."""
        if len(self._pool) < count:
            self._pool.extend(self.create_users(max(count, 40)))
        taken, self._pool[:] = self._pool[:count], self._pool[count:]
        return taken

    @property
    def postgres_url(self) -> str:
        """The site's own PostgreSQL database, for psycopg (to look at what was stored)."""
        return self.env["DATABASE_URL"].replace("postgres://", "postgresql://", 1)

    def createimuser(self, name: str, *extra: str) -> int:
        return int(self.manage("createimuser", name, *extra).strip().splitlines()[-1])

    def mintoken(self, name_or_id: str, *extra: str) -> str:
        return self.manage("mintoken", name_or_id, *extra).strip()


@contextmanager
def postgres_redis_deployment(processes: int, **settings: str) -> Iterator[Site]:
    """A fresh PostgreSQL database and Redis prefix, `processes` daphne processes sharing them."""
    from tests.services import POSTGRES_URL, REDIS_URL, require_postgres, require_redis

    require_postgres()
    require_redis()
    database = f"imchat_e2e_{secrets.token_hex(6)}"
    prefix = f"imchat_e2e_{secrets.token_hex(6)}"
    admin_url = POSTGRES_URL.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    database_url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + database
    try:
        with tempfile.TemporaryDirectory(prefix="imchat-e2e-") as var_dir:
            site = Site(env=base_env(var_dir, DATABASE_URL=database_url, REDIS_URL=REDIS_URL,
                                     IM_REDIS_PREFIX=prefix, **settings))
            site.migrate()
            try:
                site.start(processes)
                yield site
            finally:
                site.stop()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        store = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        keys = list(store.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            store.delete(*keys)
        store.close()


# --- Socket client ----------------------------------------------------------------------------------


class Client:
    """One WebSocket. Frames not yet asked for are buffered, so pushes may interleave with replies."""

    def __init__(self, ws, label: str = ""):
        self.ws = ws
        self.label = label
        self.buffer: list[dict] = []

    @classmethod
    async def open(cls, url: str, *, label: str = "", **options: Any) -> "Client":
        options.setdefault("open_timeout", WAIT_SECONDS)
        options.setdefault("proxy", None)
        options.setdefault("close_timeout", 2)
        ws = await websockets.connect(url, **options)
        return cls(ws, label or url)

    @classmethod
    async def as_user(cls, server: Server, user: User, *, path: str = "/", **options: Any) -> "Client":
        """A logged-in socket (token in the query, as the compat client does), ready for pushes."""
        client = await cls.open(server.socket_url(user.token, path), label=f"{user.name}@{server.port}", **options)
        await client.ready()
        return client

    async def ready(self) -> None:
        """Wait for a heartbeat round trip: the socket is logged in and the server handles its frames.

        A refused socket never answers (it gets -200 and is closed), so this also proves the login.
        """
        await self.send("ping")
        pong = await self.expect(lambda frame: frame.get("code") == -1, what="PONG (socket ready)")
        assert pong == {"code": -1, "msg": "PONG", "result": None}

    async def close(self) -> None:
        await self.ws.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def send(self, frame: dict | str | bytes) -> None:
        # As a browser's JSON.stringify: non-ASCII text goes as UTF-8, not as \u escapes.
        await self.ws.send(json.dumps(frame, ensure_ascii=False) if isinstance(frame, dict) else frame)

    async def request(self, cls: str, action: str, content: Any = None, **extra: Any) -> dict:
        """Send one request and return its reply (the next frame that is not a push)."""
        frame = {"class": cls, "action": action, **extra}
        if content is not None:
            frame["content"] = content
        await self.send(frame)
        return await self.reply()

    async def _next(self, timeout: float) -> dict:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(raw, str), f"{self.label}: the server sent a binary frame: {raw!r}"
        return json.loads(raw)

    async def expect(self, match, *, timeout: float = WAIT_SECONDS, what: str = "") -> dict:
        """The first frame (buffered or new) for which `match(frame)` holds; others stay buffered."""
        for index, frame in enumerate(self.buffer):
            if match(frame):
                return self.buffer.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                frame = await self._next(left)
            except TimeoutError:
                raise AssertionError(
                    f"{self.label}: no {what or 'matching frame'} within {timeout}s; got meanwhile {self.buffer}"
                ) from None
            except ConnectionClosed as closed:
                raise AssertionError(
                    f"{self.label}: closed ({closed}) while waiting for {what or 'a frame'}; got {self.buffer}"
                ) from None
            if match(frame):
                return frame
            self.buffer.append(frame)

    async def expect_code(self, code: int, *, timeout: float = WAIT_SECONDS) -> dict:
        return await self.expect(lambda frame: frame.get("code") == code, timeout=timeout, what=f"code {code}")

    async def reply(self, *, timeout: float = WAIT_SECONDS) -> dict:
        return await self.expect(lambda frame: frame.get("code") not in PUSH_CODES, timeout=timeout, what="reply")

    async def settle(self, *, quiet: float = 0.3) -> list[dict]:
        """Everything that arrives before the server answers a heartbeat, and a short quiet period after.

        The server handles a socket's frames in order and sends an action's pushes right after its
        reply, so once the PONG is here, a push the previous request caused has had its chance.
        """
        await self.send("ping")
        await self.expect(lambda frame: frame.get("code") == -1, what="PONG")
        end = time.monotonic() + quiet
        while (left := end - time.monotonic()) > 0:
            try:
                self.buffer.append(await self._next(left))
            except TimeoutError:
                break
        frames, self.buffer = self.buffer, []
        return frames

    async def closed(self, *, timeout: float = WAIT_SECONDS) -> int | None:
        """Wait for the server to close the socket (frames until then are buffered); the close code."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.label}: still open after {timeout}s; got {self.buffer}")
            try:
                self.buffer.append(await self._next(left))
            except ConnectionClosed:
                return self.ws.close_code
            except TimeoutError:
                continue


def run(coroutine, *, timeout: float = 60) -> Any:
    """Run one test's coroutine on a fresh event loop, bounded as a whole."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def client_frame(payload: str | bytes, opcode: Opcode = Opcode.TEXT, *, fin: bool = True) -> bytes:
    """A frame as a client puts it on the wire, masked with a fresh random key (websockets'
    serializer): for tests that write bytes straight to a socket, packed or cut as TCP may."""
    return Frame(opcode, payload.encode() if isinstance(payload, str) else payload, fin=fin).serialize(mask=True)


def send_msg_frame(to_uid: int, msg: str, *, chat_id: Any = "", **content: Any) -> dict:
    """chat.sendMsg exactly as the compat client builds it (no req_id, no client_msg_id)."""
    return {
        "class": "chat",
        "action": "sendMsg",
        "content": {
            "to_uid": to_uid,
            "chat_type": 1,
            "msg_type": 1,
            "msg": msg,
            "chat_id": chat_id,
            "shop_id": 0,
            "role_type": 0,
            **content,
        },
    }


async def send_ok(sender: Client, frame: dict) -> dict:
    """Send a frame (usually chat.sendMsg) and return the result of its successful reply."""
    await sender.send(frame)
    reply = await sender.reply()
    assert reply["code"] == 1, reply
    return reply["result"]


def private_chat_id(a: int, b: int) -> str:
    low, high = sorted((a, b))
    return f"{low}_{high}"


def http_post(server: Server, path: str, body: Any = None, *, token: str | None = None,
              headers: dict[str, str] | None = None) -> dict:
    """A compat HTTP call as the client makes it: POST, JSON body, `authorizations: bear <jwt>`."""
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        sent["authorizations"] = f"bear {token}"
    response = httpx.post(server.http_url + path, content=json.dumps(body) if body is not None else b"",
                          headers=sent, timeout=WAIT_SECONDS, trust_env=False)
    assert response.status_code == 200, f"POST {path}: HTTP {response.status_code}: {response.text[:500]}"
    return response.json()
