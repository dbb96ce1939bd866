"""The contact guard in the message path: what a shop's setting does to a customer-service text,
and what a flagged message leaves behind (its mark, the 311 to the shop's agents, the mall's webhook).

The setting comes with what the path reads anyway (the live-sessions statement, the shop row of the
slow path); the scan is CPU only; flagged messages, rare, are recorded together per batch.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from chat import realtime
from chat.messages import Draft, Stored, payload
from chat.models import Message, MsgType, SentAs
from customer_service import webhooks
from customer_service.contact_guard import kinds_of, mask, scan
from customer_service.models import Shop
from imchat.errors import Code

Mode = Shop.ContactGuard


@dataclass(frozen=True)
class Verdict:
    """A text after the guard: what is stored and pushed, the kinds to flag, the sender's note."""

    msg: str
    flagged: tuple[str, ...] = ()
    note: dict | None = None


_allowed_cache: dict[tuple, frozenset[str]] = {}


def allowed_domains() -> frozenset[str]:
    """IM_GUARD_ALLOWED_DOMAINS and IM_PUBLIC_URL's host: links there are the mall's own."""
    key = (tuple(settings.IM_GUARD_ALLOWED_DOMAINS), settings.IM_PUBLIC_URL)
    allowed = _allowed_cache.get(key)
    if allowed is None:
        host = urlsplit(settings.IM_PUBLIC_URL).hostname if settings.IM_PUBLIC_URL else None
        allowed = _allowed_cache[key] = frozenset(filter(None, [*key[0], host]))
    return allowed


def screen(mode: str, msg_type: int, msg: str) -> Verdict:
    """Apply the shop's mode to one message: off passes, mask rewrites, flag names what it found."""
    if mode == Mode.OFF or msg_type != MsgType.TEXT:
        return Verdict(msg)
    findings = scan(msg, allowed_domains=allowed_domains())
    if not findings:
        return Verdict(msg)
    if mode == Mode.MASK:
        masked = mask(msg, findings)
        return Verdict(masked, note={"guard": "masked", "msg": masked})
    return Verdict(msg, flagged=tuple(kinds_of(findings)))


def flag_event(draft: Draft, stored: Stored, kinds: tuple[str, ...]) -> dict:
    """The 311's result."""
    return {"chat_id": draft.chat_id, "shop_id": draft.shop_id or 0, "msg_id": stored.msg_id, "seq": stored.seq,
            "kinds": list(kinds), "from_uid": draft.sender_id or 0}


def messages_flag(flagged: list[tuple[Draft, Stored, tuple[str, ...]]]) -> None:
    """Messages just stored with a contact in them (in the store's transaction): marked (one UPDATE
    per set of kinds), a 311 to each shop's agents and owner, and the mall's `message.flagged`."""
    if not flagged:
        return
    by_kinds: dict[str, list[int]] = {}
    for _, stored, kinds in flagged:
        by_kinds.setdefault(",".join(kinds), []).append(stored.msg_id)
    for kinds, msg_ids in by_kinds.items():
        Message.objects.filter(pk__in=msg_ids).update(guard_kinds=kinds)
    for draft, stored, kinds in flagged:
        realtime.push_on_commit([realtime.shop_agents_group(draft.shop_id)], Code.MESSAGE_FLAGGED,
                                flag_event(draft, stored, kinds))
    if webhooks.wanted(webhooks.Event.MESSAGE_FLAGGED):
        webhooks.webhooks_enqueue_many(event=webhooks.Event.MESSAGE_FLAGGED, datas=[
            {**flag_event(draft, stored, kinds), "side": "agent" if draft.sent_as == SentAs.SERVICE else "consumer",
             "message": payload(draft, stored)}
            for draft, stored, kinds in flagged
        ])


def shop_set_contact_guard(*, shop: Shop, mode: str) -> Shop:
    """Change a shop's guard; the next message reads it (it comes with the live sessions)."""
    Shop.objects.filter(pk=shop.pk).update(contact_guard=mode)
    shop.contact_guard = mode
    return shop
