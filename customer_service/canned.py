"""Canned replies: a shop's quick replies with a `/shortcut` and variables filled per conversation.

A reply's text may say `{customer_name}`, `{shop_name}` and `{agent_name}`. Any other `{name...}`
(`{customer_name.__class__}`, `{order_id}`) is refused when the reply is saved, so a merchant learns
of a typo at once; text saved earlier is still rendered safely, such a token left as it is.
Rendering is one regular-expression substitution of those three exact tokens, never str.format:
no attribute or index lookup can run, and a filled-in value is never scanned again.
"""

import re
from typing import Any

from django.db import IntegrityError, transaction

from accounts.models import User
from chat import ids
from customer_service.models import QuickReply, Shop
from customer_service.selectors import customer_conversation, shop_side_of
from imchat.errors import bad_request, not_found

VARIABLES = ("customer_name", "shop_name", "agent_name")
TITLE_CHARS = 64
TEXT_CHARS = 2000
SHORTCUT_CHARS = 32
REPLIES_PER_SHOP = 500
_VARIABLE = re.compile(r"\{(" + "|".join(VARIABLES) + r")\}")
_TOKEN = re.compile(r"\{([A-Za-z_][^{}\s]{0,63})\}")  # what reads like a variable
_SHORTCUT = re.compile(rf"[a-z0-9][a-z0-9_-]{{0,{SHORTCUT_CHARS - 1}}}")


def check_text(text: Any) -> str:
    """The reply's text, or code 0 naming an unknown variable."""
    if not isinstance(text, str) or not text.strip():
        raise bad_request("text: required")
    if "\x00" in text:
        raise bad_request("text: must not contain NUL characters")
    if len(text) > TEXT_CHARS:
        raise bad_request(f"text: at most {TEXT_CHARS} characters")
    for token in _TOKEN.finditer(text):
        if token.group(1) not in VARIABLES:
            raise bad_request(f"text: unknown variable {token.group(0)}; use "
                              + ", ".join(f"{{{name}}}" for name in VARIABLES))
    return text.strip()


def check_shortcut(shortcut: Any) -> str:
    """A slug (lower case letters, digits, - and _), or "" for a reply without one."""
    if shortcut is None or shortcut == "":
        return ""
    if not isinstance(shortcut, str):
        raise bad_request("shortcut: must be a string")
    shortcut = shortcut.strip().lstrip("/").lower()
    if not _SHORTCUT.fullmatch(shortcut):
        raise bad_request(f"shortcut: letters, digits, - and _ only, at most {SHORTCUT_CHARS} characters")
    return shortcut


def check_title(title: Any) -> str:
    if not isinstance(title, str) or not title.strip():
        raise bad_request("title: required")
    if len(title.strip()) > TITLE_CHARS or "\x00" in title:
        raise bad_request(f"title: at most {TITLE_CHARS} characters")
    return title.strip()


def render(text: str, values: dict[str, str]) -> str:
    """The text with the three variables filled; anything else stays exactly as written."""
    return _VARIABLE.sub(lambda match: values[match.group(1)], text)


def reply_row(reply: QuickReply) -> dict[str, Any]:
    return {"id": reply.pk, "shop_id": reply.shop_id, "shortcut": reply.shortcut, "title": reply.title,
            "text": reply.text, "order": reply.order}


def replies_rendered(*, user: User, chat_id: str) -> dict[str, Any]:
    """The shop's replies filled for one conversation, for an agent or the owner of its shop."""
    shop_id = shop_side_of(user, chat_id)
    consumer_id = ids.parse_chat_id(chat_id).b
    if customer_conversation(shop_id, consumer_id) is None:
        raise not_found("chat_id: not a customer of this shop")
    shop = Shop.objects.get(pk=shop_id)
    customer = User.objects.filter(pk=consumer_id).first()
    values = {"customer_name": customer.display_name if customer else "", "shop_name": shop.name,
              "agent_name": user.display_name}
    return {"chat_id": chat_id, "shop_id": shop_id, "replies": [
        {**reply_row(reply), "text": render(reply.text, values)}
        for reply in QuickReply.objects.filter(shop_id=shop_id)
    ]}


def _save(reply: QuickReply) -> QuickReply:
    try:
        with transaction.atomic():
            reply.save()
    except IntegrityError:
        raise bad_request(f"shortcut: /{reply.shortcut} is already used in this shop") from None
    return reply


@transaction.atomic
def reply_create(*, shop: Shop, title: Any, text: Any, shortcut: Any = "", order: int = 0) -> QuickReply:
    if QuickReply.objects.filter(shop=shop).count() >= REPLIES_PER_SHOP:
        raise bad_request(f"title: a shop keeps at most {REPLIES_PER_SHOP} replies")
    return _save(QuickReply(shop=shop, title=check_title(title), text=check_text(text),
                            shortcut=check_shortcut(shortcut), order=order))


@transaction.atomic
def reply_update(*, reply: QuickReply, **changes: Any) -> QuickReply:
    checks = {"title": check_title, "text": check_text, "shortcut": check_shortcut, "order": int}
    for name, value in changes.items():
        setattr(reply, name, checks[name](value))
    return _save(reply)


@transaction.atomic
def reply_delete(*, reply: QuickReply) -> dict:
    row = reply_row(reply)
    reply.delete()
    return row
