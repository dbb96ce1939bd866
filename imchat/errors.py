"""The protocol's reply codes and the one error type app code raises (rendered once per transport)."""

import math
from enum import IntEnum
from typing import Any


class Code(IntEnum):
    """Every `code` of PROTOCOL.md section 2, in one place."""

    OK = 1
    BAD_REQUEST = 0
    PONG = -1
    NOT_LOGGED_IN = -200
    FORBIDDEN = -403
    NOT_FOUND = -404
    RATE_LIMITED = -429
    SERVER_FAULT = -500
    FRIEND_LIST = 100
    GROUP_MEMBERS = 101
    RECENT_CHATS = 102
    MESSAGE = 200
    CHAT_RECORD = 201
    READ_RECEIPT = 301
    TYPING = 302
    RECALLED = 303
    AGENT_STATUS = 304
    SESSION_EVENT = 305
    GROUP_EVENT = 306
    OWN_MESSAGE = 307
    SESSION_RATED = 308
    SESSION_NOTE = 309
    SESSION_LABELS = 310
    MESSAGE_FLAGGED = 311  # ext: a customer-service message with a contact in it, to the shop's agents


class CloseCode(IntEnum):
    """WebSocket close codes (daphne allows applications only 1000 and 3000-4999)."""

    NOT_LOGGED_IN = 4401
    FRAME_TOO_LARGE = 4009
    TOO_MANY_SOCKETS = 4429
    SERVER_FAULT = 4500
    SERVICE_RESTART = 4012  # 1012 (Service Restart) as an application may send it: reconnect, elsewhere if need be


class AppError(Exception):
    """Raise anywhere below an entry point; the consumer or the HTTP layer renders it."""

    def __init__(self, code: Code, msg: str, result: Any = None):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.result = result

    @property
    def retry_after(self) -> int | None:
        """Seconds to wait before trying again, when a -429 says (HTTP sends them as Retry-After)."""
        if self.code == Code.RATE_LIMITED and isinstance(self.result, dict):
            return self.result.get("retry_after")
        return None


def bad_request(msg: str) -> AppError:
    return AppError(Code.BAD_REQUEST, msg)


def forbidden(msg: str = "forbidden") -> AppError:
    return AppError(Code.FORBIDDEN, msg)


def not_found(msg: str = "not found") -> AppError:
    return AppError(Code.NOT_FOUND, msg)


def rate_limited(retry_after: float, why: str = "too many requests") -> AppError:
    """-429 with the whole seconds to wait, in the message (the compat client shows only that) and as
    `result.retry_after` (the transports also send it as Retry-After)."""
    seconds = max(1, math.ceil(retry_after))
    return AppError(Code.RATE_LIMITED, f"{why}, try again in {seconds} s", {"retry_after": seconds})
