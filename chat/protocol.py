"""The wire format of PROTOCOL.md section 2: parsing frames, building replies, reading fields."""

from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings

from imchat import metrics
from imchat.errors import AppError, Code, bad_request
from imchat.links import absolute_url

INT64_MAX = 2**63 - 1


class Pong(Exception):
    """The frame is a heartbeat (or not a request object): answer PONG."""


class FrameTooLarge(AppError):
    def __init__(self):
        super().__init__(Code.BAD_REQUEST, "frame too large")


@dataclass(frozen=True)
class Envelope:
    cls: str
    action: str
    content: dict[str, Any]
    req_id: Any = None

    @property
    def key(self) -> tuple[str, str]:
        return self.cls.lower(), self.action.lower()


@dataclass
class Caller:
    """Who is asking and from where: the user, the socket (None over HTTP), the base for URLs."""

    user: Any
    base_url: str
    channel_name: str | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def uid(self) -> int:
        return self.user.pk

    @property
    def avatar_url(self) -> str:
        return absolute_url(self.user.avatar, self.base_url)


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


PONG_TEXT = dumps({"code": Code.PONG, "msg": "PONG", "result": None})


def parse(text: str | None, data: bytes | None) -> Envelope:
    """An Envelope, or Pong, or an AppError naming what is wrong (see PROTOCOL.md section 2)."""
    max_bytes = settings.IM_MAX_FRAME_BYTES
    if text is None:
        if data is not None and len(data) > max_bytes:
            raise FrameTooLarge()
        raise bad_request("text frames only")
    if len(text) * 4 > max_bytes and len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise FrameTooLarge()
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise Pong() from None
    if not isinstance(frame, dict):
        raise Pong()
    cls = frame.get("class")
    if cls is None or cls == "":
        raise Pong()
    req_id = frame.get("req_id")
    if not isinstance(req_id, (str, int, float)) or isinstance(req_id, bool):
        req_id = None
    elif isinstance(req_id, str) and len(req_id) > 128:
        req_id = req_id[:128]
    if not isinstance(cls, str):
        raise _with_req_id(bad_request("class: must be a string"), req_id)
    action = frame.get("action")
    if action is None or action == "":
        raise _with_req_id(bad_request("missing action"), req_id)
    if not isinstance(action, str):
        raise _with_req_id(bad_request("action: must be a string"), req_id)
    content = frame.get("content")
    if content is None:
        content = {}
    elif not isinstance(content, dict):
        raise _with_req_id(bad_request("content: must be an object"), req_id)
    return Envelope(cls=cls, action=action, content=content, req_id=req_id)


def _with_req_id(error: AppError, req_id: Any) -> AppError:
    error.req_id = req_id
    return error


def reply(code: int, result: Any = None, msg: str | None = None, req_id: Any = None) -> dict[str, Any]:
    frame = {"code": int(code), "msg": msg, "result": result}
    if req_id is not None:
        frame["req_id"] = req_id
    return frame


def error_reply(error: AppError, envelope: Envelope | None = None) -> dict[str, Any]:
    metrics.error(error.code)  # every error a socket answers passes here: imchat_errors
    req_id = envelope.req_id if envelope is not None else getattr(error, "req_id", None)
    return reply(error.code, error.result, error.msg, req_id)


def push_text(code: int, result_json: str) -> str:
    """A pushed frame around an already-encoded result, so one message is encoded once."""
    return f'{{"code":{int(code)},"msg":null,"result":{result_json}}}'


def push_text_as(code: int, text: str) -> str:
    """A frame made by push_text, under another code (its first member), without encoding it again."""
    return f'{{"code":{int(code)}{text[text.index(","):]}'


# --- Reading `content` fields: the first bad field is reported by name ------------------------

_MISSING = object()


def read_int(content: dict, name: str, *, required: bool = False, default: int | None = None,
             minimum: int = 0) -> int | None:
    """An integer sent as a JSON number or a numeric string (the compat client sends both)."""
    raw = content.get(name, _MISSING)
    if raw is _MISSING or raw is None or raw == "":
        if required:
            raise bad_request(f"{name}: required")
        return default
    if isinstance(raw, bool):
        raise bad_request(f"{name}: must be an integer")
    if isinstance(raw, float):
        if not raw.is_integer():
            raise bad_request(f"{name}: must be an integer")
        raw = int(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        if not (text.isascii() and text.lstrip("-").isdigit()) or len(text) > 20:
            raise bad_request(f"{name}: must be an integer")
        raw = int(text)
    elif not isinstance(raw, int):
        raise bad_request(f"{name}: must be an integer")
    if raw < minimum or raw > INT64_MAX:
        raise bad_request(f"{name}: out of range")
    return raw


def read_str(content: dict, name: str, *, required: bool = False, max_length: int | None = None,
             default: str | None = None) -> str | None:
    raw = content.get(name)
    if raw is None or raw == "":
        if required:
            raise bad_request(f"{name}: required")
        return default
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        raise bad_request(f"{name}: must be a string")
    if "\x00" in raw:  # PostgreSQL text cannot hold NUL: refuse it here, not with a -500 later
        raise bad_request(f"{name}: must not contain NUL characters")
    if max_length is not None and len(raw) > max_length:
        raise bad_request(f"{name}: at most {max_length} characters")
    return raw


def read_int_list(content: dict, name: str, *, max_items: int = 500) -> list[int]:
    raw = content.get(name)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise bad_request(f"{name}: must be a list of user ids")
    if len(raw) > max_items:
        raise bad_request(f"{name}: at most {max_items} items")
    return [read_int({name: item}, name, required=True, minimum=1) for item in raw]


def read_bool(content: dict, name: str, *, default: bool = False) -> bool:
    raw = content.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and raw.lower() in {"0", "1", "true", "false"}:
        return raw.lower() in {"1", "true"}
    raise bad_request(f"{name}: must be a boolean")
