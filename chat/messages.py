"""The one way a message is stored and pushed, whatever its kind.

Each kind (private, group, customer service either way, system notices, the shop's offline notice)
first applies its own policy: who may send, which conversation, who hears it. It then hands this
module `Draft`s, and `messages_store` does the rest for all of them at once:
- on PostgreSQL, one statement: lock the conversations in id order, give each message the next seq
  of its conversation (gap-free, in request order), insert them, set each conversation's summary
  from its newest message, move the senders' read markers and bring hidden rows back; elsewhere,
  the same three steps per message in one transaction;
- the payload of each message, built once and encoded once;
- its pushes, on commit: 200 to the receivers, 307 to the sender's other sockets;
- for a receiver with no live socket (`Draft.notify`), the mall's `notification.offline` webhook,
  debounced, in the same transaction (customer_service/offline.py; nothing at all while it is off).

A client_msg_id stored before makes the whole call raise IntegrityError with nothing stored (the
unique constraint answers; there is no lookup first): callers store again one by one, where the
resend answers with the stored message (`message_find_sent`).
"""

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from chat import realtime
from chat.cards import Card
from chat.models import Conversation, Message, Participant
from chat.payloads import message_result, unix
from customer_service import offline
from customer_service.models import ServiceSession
from customer_service.selectors import ROUTING_JOINS, ROUTING_STAMP
from imchat import metrics
from imchat.errors import AppError, Code
from imchat.sql import prepared

SUMMARY_CHARS = 255


@dataclass(frozen=True)
class Side:
    """Whose read marker a new message moves: a user's row, a shop's shared row, or nobody's."""

    user_id: int | None = None
    shop_id: int | None = None


NOBODY = Side()


@dataclass(frozen=True)
class Author:
    """Who a message is from, as receivers see it (the compat `nickname`, `avatar`, `id`)."""

    nickname: str
    avatar: str
    user_id: int | None = None  # shown as `id`; None when a shop or the platform speaks
    service_nickname: str | None = None  # an agent speaking for a shop
    service_avatar: str | None = None


@dataclass(frozen=True)
class Notify:
    """Whom the mall tells of a message when they have no live socket (customer_service/offline.py):
    the one receiver the kind's policy named, never anyone a client chose."""

    recipient_id: int
    role: str  # offline.Role: consumer, agent, user (private chat)
    quiet_seconds: int  # at most one notification per this long per conversation and receiver
    session_id: int | None = None


@dataclass(frozen=True)
class Draft:
    """A message its kind's policy accepted: where it goes, who says it, who hears it."""

    chat_id: str
    chat_type: int
    msg_type: int
    msg: str
    author: Author
    reads: Side  # the sender's side has read up to its own message
    sent_as: int
    to_uid: int
    sender_id: int | None = None  # the user who wrote it; None for the platform's or a shop's notices
    shop_id: int | None = None
    client_msg_id: str | None = None
    receivers: tuple[str, ...] = ()  # channel groups whose sockets get it as 200
    sender_socket: str | None = None  # gets only the reply
    # The sender's other sockets get a 307: through their own user group, or (group chat) inside
    # the receivers' group, which they are in too.
    echo_in_receivers: bool = False
    # Ext fields of the sender's reply beside the stored message's identity (the contact guard's
    # `guard: "masked"` and the text as stored).
    sender_note: dict | None = None
    card: Card | None = None  # the mall's verified card; `msg` is its line of text
    served: "Served | None" = None  # a customer-service message of the batch: stored only while served
    notify: Notify | None = None  # its one receiver the mall tells while they have no live socket


@dataclass(frozen=True)
class Served:
    """The customer-service session a batched message counts on: the store touches it (active;
    answered, for the first-response time) and stores the message only while it is still open
    with this agent, its routing facts unchanged (`stamp`, PostgreSQL) and, for a consumer's
    message (not `answered`), not idle (IM_SESSION_IDLE_SECONDS); otherwise the message goes alone,
    through routing. One statement."""

    session_id: int
    agent_id: int
    answered: bool  # an agent's answer; else a consumer's message
    stamp: str = ""  # customer_service.selectors.ROUTING_STAMP as the policy read it


@dataclass
class Plan:
    """What one kind's policy makes of its messages in a batch (indexes are the batch's).

    `drafts` go to the one shared store; `errors` are answered at once; `alone` go one by one
    through the kind's full path (a new session: what needs locks or lookups the batch does not
    make). A draft the store leaves out for want of a conversation goes to `open_conversations`
    when the kind has one (first messages: their conversations opened together, {index: error}
    for those that cannot be), then to one more store; one left out otherwise (its session changed
    since the policy looked: `Draft.served`) goes alone after all. `after_store`, run in the same
    transaction just after a store with the drafts stored ({index: Stored}), records what the kind
    keeps beside some messages (the contact guard's flags).
    """

    drafts: dict[int, Draft] = field(default_factory=dict)
    errors: dict[int, AppError] = field(default_factory=dict)
    alone: list[int] = field(default_factory=list)
    after_store: "Callable[[dict[int, Stored]], None] | None" = None
    open_conversations: "Callable[[dict[int, Draft]], dict[int, AppError]] | None" = None


@dataclass(frozen=True)
class Stored:
    """What the sender's reply needs: the stored message's identity."""

    msg_id: int
    chat_id: str
    seq: int
    createtime: int
    client_msg_id: str | None
    # Ext fields of the reply: the draft's sender_note; a card's message also says what was stored
    # (`msg` and `card`).
    note: dict | None = None

    def as_reply(self) -> dict:
        reply = {
            "msg_id": self.msg_id,
            "chat_id": self.chat_id,
            "seq": self.seq,
            "createtime": self.createtime,
            "client_msg_id": self.client_msg_id,
        }
        if self.note:
            reply.update(self.note)
        return reply


def messages_store(drafts: list[Draft], *, now: datetime | None = None) -> list[Stored | None]:
    """Store drafts, build each payload once, push on commit; None where the conversation is missing.

    Atomic as a whole; inside an outer transaction the pushes wait for its commit.
    """
    if not drafts:
        return []
    now = now or timezone.now()
    # Asked before the store takes its row locks; nothing at all while notifications are off.
    away = offline.receivers_away(drafts) if offline.wanted() else None
    # PostgreSQL stores them in one statement, a transaction of its own: BEGIN and COMMIT around it
    # would be two more round trips a batch (~100-200 µs of CPU). Inside a caller's transaction: no
    # savepoint round trips either.
    one_statement = connection.vendor == "postgresql" and not away
    with nullcontext() if one_statement else transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            stored = _store_in_one_statement(drafts, now)
        else:
            stored = [_store_one(draft, now) for draft in drafts]
        if away:
            offline.notifications_record(drafts, stored, away, now=now)
    kinds: dict[int, int] = {}
    pushes: list[realtime.Push] = []
    for draft, one in zip(drafts, stored):
        if one is not None:
            pushes += _pushes(draft, one)
            kinds[draft.chat_type] = kinds.get(draft.chat_type, 0) + 1
    realtime.pushes_on_commit(pushes, then=lambda: metrics.messages_stored(kinds))  # one hook for the batch
    return stored


def message_store(draft: Draft, *, now: datetime | None = None) -> Stored | None:
    return messages_store([draft], now=now)[0]


def payload(draft: Draft, stored: Stored) -> dict:
    """The result of the 200/307 push (PROTOCOL.md section 4)."""
    author = draft.author
    return message_result(
        nickname=author.nickname, avatar=author.avatar, sender_id=author.user_id, chat_id=draft.chat_id,
        chat_type=draft.chat_type, msg_type=draft.msg_type, msg=draft.msg, createtime=stored.createtime,
        msg_id=stored.msg_id, seq=stored.seq, from_uid=draft.sender_id or 0, to_uid=draft.to_uid,
        client_msg_id=draft.client_msg_id, shop_id=draft.shop_id, service_nickname=author.service_nickname,
        service_avatar=author.service_avatar, card=draft.card.shown if draft.card is not None else None,
    )


def _pushes(draft: Draft, stored: Stored) -> list[realtime.Push]:
    """One event: 200 to the receivers, 307 to the sender's other sockets (in the receivers' group
    chat, or through their own user group), nothing to the sending socket (it has the reply)."""
    groups = draft.receivers
    if not draft.echo_in_receivers and draft.sender_id is not None:
        groups = (*groups, realtime.user_group(draft.sender_id))
    return realtime.frame_pushes(groups, Code.MESSAGE, payload(draft, stored), exclude_channel=draft.sender_socket,
                                 sender_uid=draft.sender_id, own_code=Code.OWN_MESSAGE if draft.sender_id else None)


# --- Storing ------------------------------------------------------------------------------------

_CONVERSATIONS = Conversation._meta.db_table
_MESSAGES = Message._meta.db_table
_PARTICIPANTS = Participant._meta.db_table
_SESSIONS = ServiceSession._meta.db_table
_MESSAGE_IDS = f"{_MESSAGES}_id_seq"  # the id column's own sequence (PostgreSQL's name for it)

# The reader side of a row of `reads` matches a participant row `t`: the sender's own row, or the
# shop's shared row when an agent speaks for the shop.
_READS_ROW = ("(r.reads_user IS NOT NULL AND r.reads_user = t.user_id) OR "
              "(r.reads_shop IS NOT NULL AND t.user_id IS NULL AND r.reads_shop = t.shop_id)")

_STORE_SQL = f"""
WITH input AS (
    -- The drafts as one JSON array of rows (orjson writes it in microseconds; psycopg dumps each
    -- list parameter in Python, ~10 µs apiece: 13 of them were ~150 µs a batch).
    SELECT d->>0 AS chat_id, (d->>1)::bigint AS sender_id, (d->>2)::bigint AS reads_user,
           (d->>3)::bigint AS reads_shop, (d->>4)::smallint AS sent_as, (d->>5)::smallint AS chat_type,
           (d->>6)::smallint AS msg_type, d->>7 AS msg, (d->>8)::bigint AS to_uid, (d->>9)::bigint AS shop_id,
           d->>10 AS client_msg_id, d->>11 AS card, (d->>12)::bigint AS session_id, ord
    FROM jsonb_array_elements(%(drafts)b::jsonb) WITH ORDINALITY AS i(d, ord)
), sessions AS (
    -- The sessions the messages count on: the routing stamp the policy read, and whether an agent
    -- answered in it (the first-response time) or a consumer wrote in it (it must not be idle).
    SELECT (s->>0)::bigint AS id, s->>1 AS stamp, (s->>2)::boolean AS answered, (s->>3)::boolean AS asked
    FROM jsonb_array_elements(%(sessions)b::jsonb) AS s
), touched AS (
    -- Sessions by their ids as an array, not a join: the statement is prepared, and its generic plan
    -- joined every open session with every touched one (a nested loop, ~1 ms a batch).
    UPDATE {_SESSIONS} AS s
    SET last_activity_at = %(now)b,
        first_response_at = CASE WHEN s.id = ANY(ARRAY(SELECT id FROM sessions WHERE answered))
                                 THEN COALESCE(s.first_response_at, %(now)b) ELSE s.first_response_at END
    WHERE s.id = ANY(ARRAY(SELECT id FROM sessions)) AND s.state = 'open'
      AND (s.last_activity_at >= %(idle_before)b OR NOT s.id = ANY(ARRAY(SELECT id FROM sessions WHERE asked)))
    RETURNING s.id, s.agent_id, s.shop_id, s.consumer_id
), served AS (
    -- Still with the agent, on the facts the policy read: the stamp it had for the session (joined:
    -- a subquery per session scanned the batch's sessions each time, ~0.9 ms a batch of 64).
    SELECT s.id FROM touched s JOIN sessions seen ON seen.id = s.id {ROUTING_JOINS}
    WHERE {ROUTING_STAMP} = seen.stamp
), accepted AS (
    SELECT * FROM input WHERE session_id IS NULL OR session_id IN (SELECT id FROM served)
), locked AS (
    -- Rows found by their keys as an array (`= ANY(ARRAY(...))`), here and below: an index scan
    -- whatever the tables' size. As a join, the generic plan scanned the whole table below some
    -- tens of thousands of rows (~1.7 ms a batch at 3,000 conversations, growing with them).
    SELECT id, chat_id, last_seq FROM {_CONVERSATIONS}
    WHERE chat_id = ANY(ARRAY(SELECT chat_id FROM accepted)) ORDER BY id FOR UPDATE
), placed AS (
    -- Each message's id taken here, so the answer needs no join of the inserted rows back to these.
    SELECT i.*, l.id AS conversation_id, l.last_seq + row_number() OVER (PARTITION BY l.id ORDER BY i.ord) AS seq,
           nextval('{_MESSAGE_IDS}'::regclass) AS id
    FROM accepted i JOIN locked l USING (chat_id)
), inserted AS (
    INSERT INTO {_MESSAGES}
        (id, conversation_id, seq, sender_id, sent_as, chat_type, msg_type, msg, to_uid, shop_id, client_msg_id,
         card, created_at)
    SELECT id, conversation_id, seq, sender_id, sent_as, chat_type, msg_type, msg, to_uid, shop_id, client_msg_id,
           card::jsonb, %(now)b
    FROM placed
), bumped AS (
    UPDATE {_CONVERSATIONS} AS c
    SET last_seq = p.seq, last_msg = left(p.msg, {SUMMARY_CHARS}), last_msg_type = p.msg_type,
        last_uid = COALESCE(p.sender_id, 0), last_time = %(now)b
    FROM (SELECT DISTINCT ON (conversation_id) * FROM placed ORDER BY conversation_id, seq DESC) AS p
    WHERE c.id = p.conversation_id AND c.id = ANY(ARRAY(SELECT id FROM locked))
), reads AS (
    SELECT conversation_id, reads_user, reads_shop, max(seq) AS seq FROM placed
    WHERE reads_user IS NOT NULL OR reads_shop IS NOT NULL
    GROUP BY conversation_id, reads_user, reads_shop
), marked AS (
    -- Each reader's row from its conversation's index (the generic plan nests loops: a loop over
    -- `placed` for every participant row was ~1 ms a batch of 64).
    UPDATE {_PARTICIPANTS} AS t SET hidden = FALSE, last_read_seq = r.seq
    FROM reads r
    WHERE t.conversation_id = r.conversation_id AND ({_READS_ROW})
      AND t.conversation_id = ANY(ARRAY(SELECT id FROM locked))
    RETURNING t.id
), unhidden AS (
    -- Everyone else's hidden row comes back (not a member who left); no row is updated twice.
    UPDATE {_PARTICIPANTS} AS t SET hidden = FALSE
    WHERE t.conversation_id = ANY(ARRAY(SELECT id FROM locked)) AND t.hidden AND t.left_seq IS NULL
      AND t.id NOT IN (SELECT id FROM marked)
)
SELECT ord, id, seq FROM placed
"""


def _store_in_one_statement(drafts: list[Draft], now: datetime) -> list[Stored | None]:
    params = store_params(drafts, now)
    with metrics.STORE_SECONDS.time():  # the statement's round trip, commit included
        rows = prepared(_STORE_SQL, params)
    stored: list[Stored | None] = [None] * len(drafts)
    createtime = unix(now)
    for ord_, msg_id, seq in rows:
        draft = drafts[ord_ - 1]
        stored[ord_ - 1] = Stored(msg_id=msg_id, chat_id=draft.chat_id, seq=seq, createtime=createtime,
                                  client_msg_id=draft.client_msg_id, note=_reply_note(draft))
    return stored


def store_params(drafts: list[Draft], now: datetime) -> dict:
    """The store statement's parameters for these drafts (PostgreSQL): each list goes as JSON, as
    psycopg dumps a list parameter in Python (~10 µs apiece) and orjson the whole in microseconds."""
    sessions: dict[int, list] = {}  # session -> [id, the stamp its drafts counted on, answered, asked]
    for draft in drafts:
        if draft.served is not None:
            session = sessions.setdefault(draft.served.session_id, [draft.served.session_id, "", False, False])
            session[1] = draft.served.stamp
            session[2 if draft.served.answered else 3] = True
    return {
        "drafts": Jsonb([(d.chat_id, d.sender_id, d.reads.user_id, d.reads.shop_id, d.sent_as, d.chat_type,
                          d.msg_type, d.msg, d.to_uid, d.shop_id, d.client_msg_id,
                          d.card.json if d.card is not None else None,
                          d.served.session_id if d.served is not None else None) for d in drafts],
                        dumps=orjson.dumps),
        "sessions": Jsonb(list(sessions.values()), dumps=orjson.dumps),
        "idle_before": _idle_before(now),
        "now": now,
    }


def _store_one(draft: Draft, now: datetime) -> Stored | None:
    """The same steps for one message (SQLite): touch its session, bump the seq, insert, move the
    read markers."""
    with connection.cursor() as cursor:
        if draft.served is not None and not _touch_served(cursor, draft.served, now):
            return None
        cursor.execute(
            f"UPDATE {_CONVERSATIONS} SET last_seq = last_seq + 1, last_msg = %s, last_msg_type = %s, "
            f"last_uid = %s, last_time = %s WHERE chat_id = %s RETURNING id, last_seq",
            [draft.msg[:SUMMARY_CHARS], draft.msg_type, draft.sender_id or 0,
             connection.ops.adapt_datetimefield_value(now), draft.chat_id],
        )
        row = cursor.fetchone()
        if row is None:
            return None
        conversation_id, seq = row
        cursor.execute(
            f"INSERT INTO {_MESSAGES} (conversation_id, seq, sender_id, sent_as, chat_type, msg_type, msg, to_uid, "
            f"shop_id, client_msg_id, card, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            f"RETURNING id",
            [conversation_id, seq, draft.sender_id, draft.sent_as, draft.chat_type, draft.msg_type, draft.msg,
             draft.to_uid, draft.shop_id, draft.client_msg_id, draft.card.json if draft.card is not None else None,
             connection.ops.adapt_datetimefield_value(now)],
        )
        msg_id = cursor.fetchone()[0]
        reads = draft.reads
        if reads.user_id is not None:
            side, side_params = "user_id = %s", [reads.user_id]
        elif reads.shop_id is not None:
            side, side_params = "(user_id IS NULL AND shop_id = %s)", [reads.shop_id]
        else:
            side, side_params = "1 = 0", []
        cursor.execute(
            f"UPDATE {_PARTICIPANTS} SET hidden = %s, last_read_seq = CASE WHEN {side} THEN %s ELSE last_read_seq END "
            f"WHERE conversation_id = %s AND ({side} OR (hidden = %s AND left_seq IS NULL))",
            [False, *side_params, seq, conversation_id, *side_params, True],
        )
    return Stored(msg_id=msg_id, chat_id=draft.chat_id, seq=seq, createtime=unix(now),
                  client_msg_id=draft.client_msg_id, note=_reply_note(draft))


def _touch_served(cursor, served: Served, now: datetime) -> bool:
    """Whether the session is still open with the agent the message counts on, and not idle for a
    consumer's message (now touched). The stamp needs no check here: only PostgreSQL keeps sessions
    read between batches (customer_service.selectors.KnownSessions)."""
    at = connection.ops.adapt_datetimefield_value(now)
    if served.answered:  # an agent's answer: the first response, if it is
        first_response, idle_check, params = "COALESCE(first_response_at, %s)", "", [at, at, served.session_id]
    else:  # a consumer's message: not into an idle session
        first_response, idle_check = "first_response_at", " AND last_activity_at >= %s"
        params = [at, served.session_id, connection.ops.adapt_datetimefield_value(_idle_before(now))]
    cursor.execute(
        f"UPDATE {_SESSIONS} SET last_activity_at = %s, first_response_at = {first_response} "
        f"WHERE id = %s AND state = 'open'{idle_check} RETURNING agent_id",
        params,
    )
    row = cursor.fetchone()
    return row is not None and row[0] == served.agent_id


def _idle_before(now: datetime) -> datetime:
    """A customer-service session with no activity since is idle: a consumer's message does not
    count on it (routing closes it and opens another)."""
    return now - timedelta(seconds=settings.IM_SESSION_IDLE_SECONDS)


def _reply_note(draft: Draft) -> dict | None:
    """The reply's ext fields: the guard's note; for a card, the text the server wrote and the card."""
    if draft.card is None:
        return draft.sender_note
    return {**(draft.sender_note or {}), "msg": draft.msg, "card": draft.card.shown}


def message_find_sent(*, sender_id: int, client_msg_id: str | None) -> Stored | None:
    """The message this sender already stored under this client_msg_id (resend = no-op)."""
    if not client_msg_id:
        return None
    row = (
        Message.objects.filter(sender_id=sender_id, client_msg_id=client_msg_id)
        .values_list("pk", "conversation__chat_id", "seq", "created_at", "msg", "card")
        .first()
    )
    if row is None:
        return None
    note = None if row[5] is None else {"msg": row[4], "card": row[5]}
    return Stored(msg_id=row[0], chat_id=row[1], seq=row[2], createtime=unix(row[3]), client_msg_id=client_msg_id,
                  note=note)
