"""The mall's offline notifications: a message whose receiver has no live socket becomes the
`notification.offline` webhook, for the mall to deliver (WeChat subscribe message, app push, SMS).

Who may hear of a message is decided by its kind's policy (`Draft.notify`): the peer of a private
chat, the consumer an agent answers, the agent a consumer's open session stays with. Nothing a
client sends names that receiver. Per batch of messages (chat/messages.py), when the mall wants
the event: one presence ask for every named receiver (before the store's row locks), and, only
when some are away, one upsert of the debounce marks (`OfflineNotification`, in the message's own
transaction: a rolled-back message leaves no mark, and every process and restart sees the same
window) and one INSERT of the events. While the event is off, nothing at all.

The debounce: at most one event per conversation and receiver per window (the shop's
`offline_notify_minutes`, IM_OFFLINE_NOTIFY_SECONDS for private chat), unless the receiver has read
up to the last reported message since; a batch with several messages for one receiver reports
its newest, with the unread count.
"""

import re
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from django.db import connection

from accounts.models import User
from chat.models import Conversation, MsgType, Participant
from chat.presence import presence
from customer_service import webhooks
from customer_service.models import OfflineNotification, Shop, WebhookDelivery

if TYPE_CHECKING:  # chat/messages.py calls this module: no import back at run time
    from chat.messages import Draft, Stored

PREVIEW_CHARS = 60
IMAGE_PREVIEW = "[image]"
_SPACES = re.compile(r"\s+")


class Role(StrEnum):
    """The receiver's side of the conversation, as the mall addresses them."""

    CONSUMER = "consumer"  # a customer, answered by a shop
    AGENT = "agent"  # the agent a customer's open session is with
    USER = "user"  # the other party of a private chat


def wanted() -> bool:
    """Whether the mall takes `notification.offline`: the one switch of this module."""
    return webhooks.wanted(WebhookDelivery.Event.NOTIFICATION_OFFLINE)


def shop_set_offline_notify(*, shop: Shop, minutes: int) -> Shop:
    """Change a shop's window (0: none); the next message reads it (it comes with the live sessions)."""
    Shop.objects.filter(pk=shop.pk).update(offline_notify_minutes=minutes)
    shop.offline_notify_minutes = minutes
    return shop


def receivers_away(drafts: "list[Draft]") -> set[int]:
    """The drafts' named receivers with no live socket on any process (one presence ask)."""
    uids = {draft.notify.recipient_id for draft in drafts if draft.notify is not None}
    return presence().offline(uids) if uids else set()


def preview(msg_type: int, msg: str) -> str:
    """A short line of the message as stored (a masked contact stays masked): images say [image],
    a card is its line of text."""
    if msg_type == MsgType.IMAGE:
        return IMAGE_PREVIEW
    line = _SPACES.sub(" ", msg).strip()
    return line if len(line) <= PREVIEW_CHARS else line[:PREVIEW_CHARS - 1] + "…"


def notifications_record(drafts: "list[Draft]", stored: "list[Stored | None]", away: set[int], *,
                         now: datetime) -> int:
    """Inside the store's transaction: the events due for receivers in `away`; how many."""
    newest: dict[tuple[str, int], tuple[Draft, Stored]] = {}
    for draft, one in zip(drafts, stored):
        notify = draft.notify
        if one is not None and notify is not None and notify.recipient_id in away and notify.quiet_seconds > 0:
            newest[(draft.chat_id, notify.recipient_id)] = (draft, one)  # request order = seq order
    if not newest:
        return 0
    unread = _debounce(list(newest.values()), now)
    datas = [_body(draft, one, unread[one.msg_id]) for draft, one in newest.values() if one.msg_id in unread]
    webhooks.webhooks_enqueue_many(event=WebhookDelivery.Event.NOTIFICATION_OFFLINE, datas=datas, now=now)
    return len(datas)


_ROW = "(CAST(%s AS text), CAST(%s AS bigint), CAST(%s AS bigint), CAST(%s AS bigint), CAST(%s AS bigint), " \
       "CAST(%s AS bigint))"

# Marks a report for each (conversation, receiver) whose window is over or who has read since the
# last one; the receiver must still be an active party of the conversation (their own row, or for
# an agent the shop's shared row) who has not read the message. Returns what it marked. The same
# text on PostgreSQL and SQLite (3.35+): VALUES input, upsert with a condition, RETURNING.
_DEBOUNCE_SQL = f"""
WITH input(chat_id, recipient_id, shop_side, msg_id, seq, quiet_until) AS (VALUES {{rows}})
INSERT INTO {OfflineNotification._meta.db_table} AS mark
    (conversation_id, recipient_id, msg_id, seq, read_seq, unread, notified_at, quiet_until)
SELECT c.id, i.recipient_id, i.msg_id, i.seq, p.last_read_seq, c.last_seq - p.last_read_seq, %s, i.quiet_until
FROM input i
JOIN {Conversation._meta.db_table} c ON c.chat_id = i.chat_id
JOIN {Participant._meta.db_table} p ON p.conversation_id = c.id AND p.left_seq IS NULL
    AND ((i.shop_side = 0 AND p.user_id = i.recipient_id)
         OR (i.shop_side = 1 AND p.user_id IS NULL AND p.shop_id = c.shop_id))
JOIN {User._meta.db_table} u ON u.id = i.recipient_id AND u.is_active
WHERE p.last_read_seq < i.seq
ON CONFLICT (conversation_id, recipient_id) DO UPDATE SET
    msg_id = excluded.msg_id, seq = excluded.seq, read_seq = excluded.read_seq, unread = excluded.unread,
    notified_at = excluded.notified_at, quiet_until = excluded.quiet_until
WHERE mark.quiet_until <= %s OR excluded.read_seq >= mark.seq
RETURNING msg_id, unread
"""


def _debounce(due: "list[tuple[Draft, Stored]]", now: datetime) -> dict[int, int]:
    """One statement: {msg_id: unread} of the messages to report now."""
    now_unix = int(now.timestamp())
    values: list = []
    for draft, one in due:
        notify = draft.notify
        values += [draft.chat_id, notify.recipient_id, int(notify.role == Role.AGENT), one.msg_id, one.seq,
                   now_unix + notify.quiet_seconds]
    sql = _DEBOUNCE_SQL.format(rows=", ".join([_ROW] * len(due)))
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, connection.ops.adapt_datetimefield_value(now), now_unix])
        return {msg_id: unread for msg_id, unread in cursor.fetchall()}


def _body(draft: "Draft", one: "Stored", unread: int) -> dict:
    """What the mall needs to write a WeChat subscribe message, a push or an SMS."""
    notify = draft.notify
    return {
        "recipient_uid": notify.recipient_id,
        "role": notify.role,
        "chat_id": draft.chat_id,
        "chat_type": draft.chat_type,
        "shop_id": draft.shop_id,
        "session_id": notify.session_id,
        "sender_uid": draft.sender_id or 0,
        "sender_name": draft.author.nickname,
        "agent_name": draft.author.service_nickname,
        "msg_id": one.msg_id,
        "seq": one.seq,
        "msg_type": draft.msg_type,
        "preview": preview(draft.msg_type, draft.msg),
        "createtime": one.createtime,
        "unread": unread,
    }

