"""Log lines: readable by default, one JSON object per line with LOG_FORMAT=json, each with the id of
the request or socket it was logged for."""

import json
import logging

import pytest
from asgiref.testing import ApplicationCommunicator

from imchat import logs
from tests import factories


def record(message: str = "hello %s", *args, level: int = logging.WARNING, exc_info=None) -> logging.LogRecord:
    made = logging.LogRecord("chat.sending", level, __file__, 1, message, args or ("world",), exc_info)
    logs.ContextFilter().filter(made)
    return made


def plain(made: logging.LogRecord) -> str:
    return logs.PlainFormatter("%(levelname)s %(name)s%(ids)s: %(message)s").format(made)


@pytest.fixture
def ids():
    """Sets the context's ids for one test, as the ASGI wrapper does for a request or socket."""
    tokens = []

    def set_ids(request: str | None = None, socket: str | None = None) -> None:
        tokens.append((logs.request_id, logs.request_id.set(request)))
        tokens.append((logs.socket_id, logs.socket_id.set(socket)))

    yield set_ids
    for variable, token in reversed(tokens):
        variable.reset(token)


def test_the_default_line_is_readable_and_names_the_request_or_socket_when_there_is_one(ids):
    assert plain(record()) == "WARNING chat.sending: hello world"

    ids(request="5f2a9c")
    assert plain(record()) == "WARNING chat.sending [request=5f2a9c]: hello world"

    ids(socket="b71e04")
    assert plain(record()) == "WARNING chat.sending [socket=b71e04]: hello world"


def test_a_json_line_is_one_object_with_the_ids_and_the_traceback_as_text(ids):
    ids(socket="b71e04")
    try:
        raise ValueError("broken")
    except ValueError:
        import sys

        made = record("storing failed for %s", "用户 7", level=logging.ERROR, exc_info=sys.exc_info())
    made.request = "<ASGIRequest: GET '/chat/?token=eyJsecret'>"  # as django.request's lines carry

    line = logs.JsonFormatter().format(made)
    parsed = json.loads(line)

    assert "\n" not in line
    assert parsed["level"] == "ERROR" and parsed["logger"] == "chat.sending"
    assert parsed["message"] == "storing failed for 用户 7"
    assert parsed["socket_id"] == "b71e04" and "request_id" not in parsed
    assert parsed["timestamp"].endswith("+00:00")
    assert "ValueError: broken" in parsed["exc_info"]
    assert "ids" not in parsed and "taskName" not in parsed
    assert "eyJsecret" not in line


def test_a_proxys_request_id_is_kept_only_when_it_is_a_plain_token():
    assert logs.sane_id("7d1c0e5b9a3f4e21") == "7d1c0e5b9a3f4e21"
    assert logs.sane_id(b"req-42") == "req-42"
    for hostile in ("a b", "x\nERROR forged line", "é", "a" * 65, "", None):
        made = logs.sane_id(hostile)
        assert made != hostile and len(made) == 16 and made.isalnum()


class Captured(logging.Handler):
    """A handler with the filter the console handler has: what the log would say."""

    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(logs.ContextFilter())

    def emit(self, made):
        self.records.append(made)


@pytest.fixture
def captured():
    import imchat.asgi  # noqa: F401 - its django.setup() configures logging anew: first, then ours

    handler = Captured()
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    yield handler.records
    root.setLevel(level)
    root.removeHandler(handler)


@pytest.mark.django_db(transaction=True)
def test_djangos_own_line_for_a_request_carries_its_id_and_the_response_says_it(captured):
    from imchat.asgi import application

    async def get(headers):
        app = ApplicationCommunicator(application, {
            "type": "http", "method": "GET", "path": "/no-such-page/", "raw_path": b"/no-such-page/",
            "query_string": b"", "headers": [(b"host", b"localhost"), *headers], "scheme": "http",
            "server": ("localhost", 80), "client": ("127.0.0.1", 5000), "http_version": "1.1"})
        await app.send_input({"type": "http.request", "body": b""})
        start = await app.receive_output(5)
        await app.receive_output(5)
        return dict(start["headers"])

    given = factories.synchronously(get)([(b"x-request-id", b"nginx-8d3f")])
    made = factories.synchronously(get)([(b"x-request-id", b"bad id\n")])

    not_found = [r for r in captured if r.name == "django.request"]
    assert given[b"x-request-id"] == b"nginx-8d3f"
    assert made[b"x-request-id"] != b"bad id\n" and len(made[b"x-request-id"]) == 16
    assert [r.request_id for r in not_found] == ["nginx-8d3f", made[b"x-request-id"].decode()]


@pytest.mark.django_db(transaction=True)
def test_the_lines_of_a_socket_carry_its_id(captured, alice):
    async def open_and_close():
        communicator = factories.socket(f"/?token={factories.token_for(alice)}",
                                        headers=[(b"x-request-id", b"sock-1")])
        connected, _ = await communicator.connect()
        assert connected
        await communicator.disconnect()

    factories.synchronously(open_and_close)()

    lines = {r.getMessage(): getattr(r, "socket_id", None) for r in captured if r.name == "chat.consumers"}
    assert lines[f"socket opened: user {alice.pk}, 2 push groups"] == "sock-1"
    assert lines[f"socket closed: user {alice.pk}, code 1000"] == "sock-1"
