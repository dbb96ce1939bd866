"""The desk's slice of the (class, action) table: private notes, labels, canned replies (agents and owners)."""

from typing import Any

from chat.inputs import read_chat_id
from chat.protocol import Caller, read_int
from customer_service import canned, desk
from customer_service.selectors import can_serve
from imchat.errors import Code, forbidden


def note(caller: Caller, content: dict) -> tuple[int, Any]:
    session = desk.session_of_chat(caller.user, read_chat_id(content))
    return Code.OK, desk.note_add(author=caller.user, session=session, text=content.get("text"),
                                  exclude_channel=caller.channel_name)


def notes(caller: Caller, content: dict) -> tuple[int, Any]:
    chat_id = read_chat_id(content)
    session = desk.session_of_chat(caller.user, chat_id)
    return Code.OK, {"chat_id": chat_id, "shop_id": session.shop_id,
                     "notes": desk.notes_of(conversation_id=session.conversation_id)}


def labels(caller: Caller, content: dict) -> tuple[int, Any]:
    shop_id = read_int(content, "shop_id", required=True, minimum=1)
    if not can_serve(caller.uid, shop_id):
        raise forbidden("not an agent of this shop")
    return Code.OK, {"shop_id": shop_id, "labels": desk.shop_labels([shop_id])}


def label(caller: Caller, content: dict) -> tuple[int, Any]:
    session = desk.session_of_chat(caller.user, read_chat_id(content))
    return Code.OK, desk.session_labels_change(session=session, add=content.get("add"), remove=content.get("remove"),
                                               exclude_channel=caller.channel_name)


def canned_replies(caller: Caller, content: dict) -> tuple[int, Any]:
    return Code.OK, canned.replies_rendered(user=caller.user, chat_id=read_chat_id(content))


HANDLERS = {
    ("service", "note"): note,
    ("service", "notes"): notes,
    ("service", "labels"): labels,
    ("service", "label"): label,
    ("service", "cannedreplies"): canned_replies,
}
