"""Log lines that say which request or socket they belong to: readable by default, JSON with LOG_FORMAT=json.

The id of the HTTP request or of the WebSocket (the proxy's X-Request-ID when it sends a sane one)
lives in a context variable of the task that serves it (`WithIds`); asgiref carries it into the
database thread, so every line logged on its behalf carries it (`ContextFilter`).
"""

import contextvars
import logging
import re
import secrets

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("imchat_request_id", default=None)
socket_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("imchat_socket_id", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
# What a proxy's id may look like (nginx's $request_id is 32 hex digits); anything else is replaced,
# so a client cannot write into the log through it.
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_CONTEXT = (("request_id", request_id), ("socket_id", socket_id))


def new_id() -> str:
    return secrets.token_hex(8)


def sane_id(value: str | bytes | None) -> str:
    """The given id if it is a plain token, else a new one."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value if value and _SANE_ID.fullmatch(value) else new_id()


class ContextFilter(logging.Filter):
    """Puts the current request's and socket's ids on every record (as attributes, when set)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, variable in _CONTEXT:
            value = variable.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True


class PlainFormatter(logging.Formatter):
    """`time LEVEL logger [request=... socket=...]: message`, the ids only when there are some."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{name.partition('_')[0]}={getattr(record, name)}"
                       for name, _ in _CONTEXT if getattr(record, name, None))
        record.ids = f" [{ids}]" if ids else ""
        return super().formatMessage(record)


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: timestamp (UTC, ISO 8601), level, logger, message, the ids, a
    record's extra fields, and exc_info (the traceback as text) when there is one. Django's `request`
    is left out: its repr holds the query string, which may hold a token."""

    def __init__(self, **kwargs):
        super().__init__("%(levelname)s %(name)s %(message)s", timestamp=True,
                         rename_fields={"levelname": "level", "name": "logger"},
                         reserved_attrs=[*_RESERVED, "ids", "request"], json_ensure_ascii=False, **kwargs)


_RESERVED = list(logging.makeLogRecord({}).__dict__) + ["message", "asctime", "taskName"]


class WithIds:
    """ASGI, around the whole application: an HTTP request's id (the proxy's X-Request-ID if sane, also
    sent back in the response's X-Request-ID) or a socket's id (the handshake's X-Request-ID, or new)
    for every line logged while it is served, Django's own "Not Found" and "Internal Server Error"
    lines included (they are written outside the middleware)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        value = sane_id(dict(scope.get("headers") or ()).get(b"x-request-id"))
        (request_id if kind == "http" else socket_id).set(value)  # this connection's task only
        if kind == "websocket":
            return await self.app(scope, receive, send)
        header = (REQUEST_ID_HEADER.lower().encode(), value.encode())

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        return await self.app(scope, receive, send_with_id)


class AccessLog:
    """daphne's access log as log records (`daphne.access`, INFO), so that with LOG_FORMAT=json every
    line of output is JSON; daphne would otherwise write NCSA lines to stdout."""

    logger = logging.getLogger("daphne.access")

    def __init__(self, stream=None):
        self.stream = stream

    def __call__(self, protocol: str, action: str, details: dict) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        if protocol == "http" and action == "complete":
            self.logger.info("%s %s %s", details["method"], details["path"], details["status"],
                             extra={"client": details["client"], "status": details["status"],
                                    "bytes": details["size"]})
        elif protocol == "websocket":
            self.logger.info("WebSocket %s %s", action, details["path"], extra={"client": details["client"]})
