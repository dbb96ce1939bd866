"""A local HTTP receiver on 127.0.0.1 standing in for the mall's webhook endpoint.

Given the secret, it checks each delivery the way docs/INTEGRATION.md tells the mall to, with that
page's own code, and answers 400 to one that fails.
"""

import functools
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

INTEGRATION = Path(__file__).resolve().parents[2] / "docs" / "INTEGRATION.md"


@functools.cache
def documented_check() -> Callable[..., bool]:
    """`imchat_signature_ok(secret, header, raw_body, now=None)`, run from docs/INTEGRATION.md's Python block."""
    blocks = re.findall(r"```python\n(.*?)```", INTEGRATION.read_text(), re.DOTALL)
    [source] = [block for block in blocks if "def imchat_signature_ok" in block]
    namespace: dict = {}
    exec(source, namespace)  # noqa: S102 - our own docs' snippet, which is what the test proves
    return namespace["imchat_signature_ok"]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool | None = None  # None: the receiver was given no secret to check with

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers each POST with the next status of `statuses` (then 200), recording what came."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)


@contextmanager
def webhook_receiver(*statuses: int, secret: str | None = None, port: int = 0) -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 (`port`, or a free one)."""
    receiver = Receiver(statuses=list(statuses))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server hook
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            signature_ok = None
            if secret is not None:
                signature_ok = documented_check()(secret, self.headers.get("X-Imchat-Signature", ""), body)
            with receiver.arrived:
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if signature_ok is False:
                    status = 400
                receiver.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, signature_ok))
                receiver.arrived.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/imchat"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
