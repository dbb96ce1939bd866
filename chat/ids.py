"""chat_id forms of PROTOCOL.md section 3, built and parsed in one place."""

import re
from dataclasses import dataclass

from chat.models import ChatType
from imchat.errors import bad_request

_PRIVATE = re.compile(r"^(\d{1,18})_(\d{1,18})$")
_SERVICE = re.compile(r"^(\d{1,18})____(\d{1,18})$")
_GROUP = re.compile(r"^g(\d{1,18})$")
_SYSTEM = re.compile(r"^sys_(\d{1,18})$")


def private_chat_id(a: int, b: int) -> str:
    low, high = sorted((a, b))
    return f"{low}_{high}"


def service_chat_id(shop_id: int, user_id: int) -> str:
    """Shop first and not sorted: (shop 5, user 2) and (shop 2, user 5) are different chats."""
    return f"{shop_id}____{user_id}"


def group_chat_id(group_id: int) -> str:
    return f"g{group_id}"


def system_chat_id(user_id: int) -> str:
    return f"sys_{user_id}"


@dataclass(frozen=True)
class ChatRef:
    """A parsed chat_id: for private `a < b` are the users, for service `a` shop and `b` user."""

    chat_type: int
    a: int
    b: int = 0

    @property
    def chat_id(self) -> str:
        if self.chat_type == ChatType.PRIVATE:
            return private_chat_id(self.a, self.b)
        if self.chat_type == ChatType.SERVICE:
            return service_chat_id(self.a, self.b)
        if self.chat_type == ChatType.GROUP:
            return group_chat_id(self.a)
        return system_chat_id(self.a)


def parse_chat_id(chat_id: object) -> ChatRef:
    if not isinstance(chat_id, str):
        raise bad_request("chat_id: must be a string")
    if match := _SERVICE.match(chat_id):
        return ChatRef(ChatType.SERVICE, int(match[1]), int(match[2]))
    if match := _PRIVATE.match(chat_id):
        low, high = sorted((int(match[1]), int(match[2])))
        return ChatRef(ChatType.PRIVATE, low, high)
    if match := _GROUP.match(chat_id):
        return ChatRef(ChatType.GROUP, int(match[1]))
    if match := _SYSTEM.match(chat_id):
        return ChatRef(ChatType.SYSTEM, int(match[1]))
    raise bad_request("chat_id: not a valid chat id")
