"""The original compiled uni-app H5 client (shared/seed/client), pointed at a test server and driven in
Chromium: where it is, a patched copy served from another origin, and one person's page.

The client is never copied into the project: each run copies it to a temporary folder, replaces its two
hard-coded server addresses (see its README) and serves the copy with a static file server.
"""

import functools
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.harness import ROOT, Server
from tests.services import missing

WAIT_MS = 10_000
HTTP_ADDRESS = '"http://chat.xiemy.cn/"'
SOCKET_ADDRESS = '"ws://chat.xiemy.cn"'
CONNECTED = "连接成功"  # what the client logs when its socket opens
SEND_BUTTON = "发送"
NO_CHATS = "您还没有相关的聊天"  # the empty conversation list

# Codes of a refused request (PROTOCOL.md 2): the client ignores socket replies, so a refusal is silent.
REFUSALS = frozenset({0, -200, -403, -404, -429, -500})


def client_dir() -> Path:
    """`IM_ORIGINAL_CLIENT_DIR`, else shared/ beside the repository, else the workplace's shared/."""
    configured = os.environ.get("IM_ORIGINAL_CLIENT_DIR")
    candidates = [Path(configured)] if configured else [ROOT.parent / "shared" / "seed" / "client",
                                                         Path("/work/shared/seed/client")]
    for candidate in candidates:
        if (candidate / "index.html").is_file():
            return candidate
    missing("The original H5 client", "looked in " + ", ".join(map(str, candidates))
            + "; set IM_ORIGINAL_CLIENT_DIR to its folder")
    raise AssertionError("unreachable")


def patched_copy(source: Path, target: Path, server: Server) -> Path:
    """A writable copy of the client whose two server addresses name `server`."""
    shutil.copytree(source, target, copy_function=shutil.copyfile)
    for folder in (target, *[path for path in target.rglob("*") if path.is_dir()]):
        folder.chmod(0o755)
    replacements = {HTTP_ADDRESS: f'"{server.http_url}/"', SOCKET_ADDRESS: f'"ws://127.0.0.1:{server.port}"'}
    found = dict.fromkeys(replacements, 0)
    for script in (target / "static" / "js").glob("*.js"):
        text = script.read_text(encoding="utf-8")
        for old, new in replacements.items():
            found[old] += text.count(old)
            text = text.replace(old, new)
        script.write_text(text, encoding="utf-8")
    if list(found.values()) != [1, 1]:
        pytest.fail(f"the client's server addresses are not where its README says: {found}", pytrace=False)
    return target


class _SinglePageHandler(SimpleHTTPRequestHandler):
    """Static files; any other path is the app's index.html (the client routes in history mode)."""

    def send_head(self):
        if not Path(self.translate_path(self.path)).is_file():
            self.path = "/index.html"
        return super().send_head()

    def log_message(self, *args) -> None:
        pass


@contextmanager
def static_site(folder: Path, port: int) -> Iterator[str]:
    """Serve `folder` on 127.0.0.1:`port`; yields the origin the browser uses (another host name)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_SinglePageHandler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, name="original-client-files", daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


class ClientPage:
    """One person in their own browser context, running the original client.

    It records what the page would hide: socket frames both ways, the compat HTTP answers, console
    errors and uncaught exceptions (the client swallows refused replies and errors in callbacks).
    """

    def __init__(self, browser, origin: str, server: Server, token: str, *, is_service: bool = False):
        self.origin = origin
        self.server = server
        self.context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
        # The vendor bundle asks a CDN for a shadow image; the network here is closed, so fail at once.
        self.context.route(lambda url: not url.startswith((origin, server.http_url)), lambda route: route.abort())
        self.context.set_default_timeout(WAIT_MS)
        self.page = self.context.new_page()
        self.sent: list[dict] = []
        self.received: list[Any] = []
        self.errors: list[str] = []
        self.answers: list[tuple[str, Any]] = []
        self._responses: list = []
        self.socket = None
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        self.page.on("console", self._console)
        self.page.on("websocket", self._websocket)
        self.page.on("response", self._response)
        self.page.on("requestfailed", self._request_failed)
        self.open_list("?token=" + token + ("&isService=1" if is_service else ""))

    # --- what the page did ---------------------------------------------------------------------------

    def _console(self, message) -> None:
        if message.type != "error":
            return
        where = (message.location or {}).get("url", "")
        if message.text.startswith("Failed to load resource") and not where.startswith((self.origin,
                                                                                          self.server.http_url)):
            return  # the CDN image aborted above
        self.errors.append(f"console: {message.text}")

    def _request_failed(self, request) -> None:
        if request.url.startswith((self.origin, self.server.http_url)):
            self.errors.append(f"request failed: {request.method} {request.url} {request.failure}")

    def _websocket(self, socket) -> None:
        self.socket = socket
        socket.on("framesent", lambda payload: self.sent.append(_frame(payload)))
        socket.on("framereceived", lambda payload: self.received.append(_frame(payload)))

    def _response(self, response) -> None:
        if response.url.startswith(self.server.http_url) and response.request.method == "POST":
            self._responses.append(response)

    def collect_answers(self) -> None:
        """Read the compat answers of this page load (their bodies are gone after a navigation)."""
        for response in self._responses:
            path = response.url[len(self.server.http_url):]
            try:
                self.answers.append((path, response.json()))
            except Exception as error:  # noqa: BLE001 - recorded, the test reports it
                self.errors.append(f"unreadable answer to {path}: {error}")
        self._responses.clear()

    def problems(self) -> list[str]:
        """Everything that went wrong unseen: errors, refused HTTP answers, refused socket replies."""
        self.collect_answers()
        refused_http = [f"{path} answered {answer}" for path, answer in self.answers
                        if not isinstance(answer, dict) or answer.get("code") != 1]
        refused_socket = [f"socket answered {frame}" for frame in self.received
                          if isinstance(frame, dict) and frame.get("code") in REFUSALS]
        return self.errors + refused_http + refused_socket

    # --- what the person does ---------------------------------------------------------------------

    def goto(self, path: str) -> None:
        """Open a page of the client and wait until its socket is connected (it sends nothing before)."""
        self.collect_answers()
        with self.page.expect_console_message(lambda message: message.text == CONNECTED, timeout=WAIT_MS):
            self.page.goto(self.origin + path)

    def open_list(self, query: str = "") -> dict:
        """The conversation list (the client's home page); the list the client asked for."""
        with self.expect_answer("user/chatRecently") as listed:
            self.goto("/" + query)
        return listed.value.json()

    def open_chat_by_link(self, to_uid: int, friend_name: str, *, shop_id: int | None = None) -> dict:
        """The mall's deep link into a chat; the history the client asked for."""
        query = f"to_uid={to_uid}" + (f"&shop_id={shop_id}" if shop_id else "") + f"&friend_name={quote(friend_name)}"
        with self.expect_answer("user/getChatRecord") as record:
            self.goto("/pages/chat_detail?" + query)
        return record.value.json()

    def back_to_list(self) -> dict:
        """The page head's back arrow; the list the client asked for again."""
        with self.expect_answer("user/chatRecently") as listed:
            self.page.locator(".uni-page-head-btn").click()
        return listed.value.json()

    def row(self, friend_name: str):
        """A row of the conversation list."""
        return self.page.locator(".touch-item", has=self.page.locator(".title-o", has_text=friend_name))

    def open_row(self, friend_name: str) -> dict:
        """Tap a conversation in the list; the history the client asked for."""
        with self.expect_answer("user/getChatRecord") as record:
            self.row(friend_name).locator(".content").click()
        return record.value.json()

    def say(self, text: str) -> dict:
        """Type into the chat box and tap 发送; the server's reply to the chat.sendMsg the client sent."""
        self.page.locator(".footer-center input").fill(text)
        with self.expect_frame_received(_is_send_reply) as reply:
            self.page.locator(".footer-right", has_text=SEND_BUTTON).click()
        return reply.value

    def bubble(self, text: str, *, mine: bool):
        """A message bubble: the person's own (right, green) or the other side's (left, white)."""
        side = ".m-content-head-customer" if mine else ".m-content-head-home"
        return self.page.locator(f".m-item {side}", has_text=text)

    def bubble_texts(self) -> list[str]:
        return self.page.locator(".m-item .m-content-head > *").all_inner_texts()

    @contextmanager
    def expect_answer(self, path: str):
        with self.page.expect_response(lambda response: response.url == f"{self.server.http_url}/{path}"
                                       and response.request.method == "POST", timeout=WAIT_MS) as info:
            yield info

    @contextmanager
    def expect_frame_sent(self, match: Callable[[dict], bool]):
        with self.socket.expect_event("framesent", lambda payload: _matches(payload, match), timeout=WAIT_MS) as info:
            yield _Parsed(info)

    @contextmanager
    def expect_frame_received(self, match: Callable[[dict], bool]):
        with self.socket.expect_event("framereceived", lambda payload: _matches(payload, match),
                                      timeout=WAIT_MS) as info:
            yield _Parsed(info)

    def close(self) -> None:
        self.context.close()


def is_mark_read(frame: dict) -> bool:
    """chat.setChatRead, as the client sends it when a chat is opened or a message arrives in it."""
    return frame.get("action") == "setChatRead"


def is_read_reply(frame: dict) -> bool:
    """The reply to chat.setChatRead: code 1 with the chat_id and seq read (a sendMsg reply has a msg_id)."""
    return frame.get("code") == 1 and isinstance(frame.get("result"), dict) and "msg_id" not in frame["result"]


class _Parsed:
    """The JSON frame of an awaited socket event."""

    def __init__(self, info):
        self._info = info

    @property
    def value(self) -> dict:
        return _frame(self._info.value)


def _is_send_reply(frame: dict) -> bool:
    result = frame.get("result")
    return frame.get("code") in REFUSALS or (frame.get("code") == 1 and isinstance(result, dict) and "msg_id" in result)


def _frame(payload: str | bytes) -> Any:
    try:
        return json.loads(payload)
    except (TypeError, ValueError):
        return payload


def _matches(payload: str | bytes, match: Callable[[dict], bool]) -> bool:
    frame = _frame(payload)
    return isinstance(frame, dict) and match(frame)
