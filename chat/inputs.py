"""Input of each socket/HTTP command, read and checked at the edge (first bad field named)."""

from dataclasses import dataclass

from django.conf import settings

from chat.cards import Card, card_read
from chat.models import ChatType, MsgType
from chat.protocol import read_int, read_str
from imchat.errors import bad_request

CLIENT_MSG_ID_CHARS = 64


def read_role_is_service(content: dict) -> bool:
    """`role_type`: "service"/1 means the shop side; "user", 0 or absent the consumer."""
    raw = content.get("role_type")
    if raw in (None, "", 0, "0", "user", False):
        return False
    if raw in (1, "1", "service", True):
        return True
    raise bad_request('role_type: must be "user" or "service"')


@dataclass(frozen=True)
class SendInput:
    """A chat.sendMsg, read and checked once at the edge."""

    chat_type: int
    msg_type: int
    msg: str
    to_uid: int | None
    chat_id: str | None
    shop_id: int | None
    as_service: bool
    client_msg_id: str | None
    card: Card | None = None  # the mall's signed card, verified; `msg` is then its line of text


_MSG_TYPES = frozenset(MsgType.values)  # Choices.values builds a new list each time: not per message
_CHAT_TYPES = frozenset(ChatType.values)


def validate_message_body(*, msg_type: int, msg: str, max_chars: int) -> None:
    if msg_type not in _MSG_TYPES:
        raise bad_request("msg_type: must be 1 (text) or 2 (image)")
    if len(msg) > max_chars:
        raise bad_request(f"msg: at most {max_chars} characters")
    if msg_type == MsgType.IMAGE and not msg.startswith(("http://", "https://")):
        raise bad_request("msg: an image message must be an absolute http(s) URL")


def read_send(content: dict) -> SendInput:
    chat_type = read_int(content, "chat_type", required=True)
    if chat_type not in _CHAT_TYPES:
        raise bad_request("chat_type: must be 1, 2, 3 or 4")
    if content.get("card") is not None:
        return _read_card_send(content, chat_type)
    msg_type = read_int(content, "msg_type", required=True)
    msg = read_str(content, "msg", required=True)
    validate_message_body(msg_type=msg_type, msg=msg, max_chars=settings.IM_MAX_MSG_CHARS)
    return _send_input(content, chat_type, msg_type, msg)


CARD_CHATS = (ChatType.PRIVATE, ChatType.SERVICE)


def _read_card_send(content: dict, chat_type: int) -> SendInput:
    """A card: verified before any database work; the message is text, the server writes its line."""
    if chat_type not in CARD_CHATS:
        raise bad_request("card: only in private and customer-service chats")
    if read_int(content, "msg_type", default=MsgType.TEXT) != MsgType.TEXT:
        raise bad_request("msg_type: a card is sent as 1 (text)")
    card = card_read(content["card"])
    return _send_input(content, chat_type, MsgType.TEXT, card.text, card)


def _send_input(content: dict, chat_type: int, msg_type: int, msg: str, card: Card | None = None) -> SendInput:
    return SendInput(
        chat_type=chat_type,
        msg_type=msg_type,
        msg=msg,
        to_uid=read_int(content, "to_uid") or None,
        chat_id=read_str(content, "chat_id", max_length=64),
        shop_id=read_int(content, "shop_id") or None,
        as_service=read_role_is_service(content),
        client_msg_id=read_str(content, "client_msg_id", max_length=CLIENT_MSG_ID_CHARS),
        card=card,
    )


def read_chat_id(content: dict) -> str:
    return read_str(content, "chat_id", required=True, max_length=64)
