"""Every chat write: one atomic function each, pushing only after commit.

`message_append` is three statements whatever the conversation's size: bump the conversation's seq
and summary (the row lock orders concurrent senders, so seqs are gap-free), insert the message, move
the sender's read marker and unhide the others. Under load, private messages take the batch path
(`private_messages_send_batch`): the same three steps for many messages in one statement.
"""

from dataclasses import dataclass
from datetime import datetime

import psycopg
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from chat import ids, realtime
from chat.models import ChatType, Conversation, Message, MsgType, Participant, SentAs
from chat.payloads import message_result, unix
from chat.protocol import Caller
from imchat.errors import Code, bad_request, forbidden, not_found

SUMMARY_CHARS = 255


@dataclass(frozen=True)
class Side:
    """Whose read marker a new message moves: a user's row, a shop's shared row, or nobody's."""

    user_id: int | None = None
    shop_id: int | None = None

    def sql(self) -> tuple[str, list]:
        if self.user_id is not None:
            return "user_id = %s", [self.user_id]
        if self.shop_id is not None:
            return "(user_id IS NULL AND shop_id = %s)", [self.shop_id]
        return "1 = 0", []


NOBODY = Side()


@dataclass(frozen=True)
class Stored:
    """What the sender's reply needs: the stored message's identity."""

    msg_id: int
    chat_id: str
    seq: int
    createtime: int
    client_msg_id: str | None

    def as_reply(self) -> dict:
        return {
            "msg_id": self.msg_id,
            "chat_id": self.chat_id,
            "seq": self.seq,
            "createtime": self.createtime,
            "client_msg_id": self.client_msg_id,
        }


def message_find_sent(*, sender_id: int, client_msg_id: str | None) -> Stored | None:
    """The message this sender already stored under this client_msg_id (resend = no-op)."""
    if not client_msg_id:
        return None
    row = (
        Message.objects.filter(sender_id=sender_id, client_msg_id=client_msg_id)
        .values_list("pk", "conversation__chat_id", "seq", "created_at")
        .first()
    )
    if row is None:
        return None
    return Stored(msg_id=row[0], chat_id=row[1], seq=row[2], createtime=unix(row[3]), client_msg_id=client_msg_id)


def _bump_conversation(*, chat_id: str, msg: str, msg_type: int, last_uid: int, now: datetime) -> tuple[int, int] | None:
    """Take the next seq of a conversation and set its summary: (conversation id, seq) or None."""
    table = Conversation._meta.db_table
    summary = msg[:SUMMARY_CHARS]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_seq = last_seq + 1, last_msg = %s, last_msg_type = %s, "
            f"last_uid = %s, last_time = %s WHERE chat_id = %s RETURNING id, last_seq",
            [summary, msg_type, last_uid, connection.ops.adapt_datetimefield_value(now), chat_id],
        )
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def message_append(
    *,
    chat_id: str,
    chat_type: int,
    sender_id: int | None,
    sender_side: "Side",
    sent_as: int,
    msg_type: int,
    msg: str,
    to_uid: int,
    shop_id: int | None = None,
    client_msg_id: str | None = None,
    now: datetime | None = None,
) -> tuple[Stored, int] | None:
    """Store one message in an existing conversation; None if the conversation does not exist.

    Must run inside a transaction. Returns the stored identity and the conversation's pk.
    """
    now = now or timezone.now()
    bumped = _bump_conversation(chat_id=chat_id, msg=msg, msg_type=msg_type, last_uid=sender_id or 0, now=now)
    if bumped is None:
        return None
    conversation_id, seq = bumped
    with connection.cursor() as cursor:  # a plain INSERT: the ORM's create costs more than the round trip
        cursor.execute(
            f"INSERT INTO {Message._meta.db_table} (conversation_id, seq, sender_id, sent_as, chat_type, msg_type, "
            f"msg, to_uid, shop_id, client_msg_id, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            f"RETURNING id",
            [conversation_id, seq, sender_id, sent_as, chat_type, msg_type, msg, to_uid, shop_id, client_msg_id,
             connection.ops.adapt_datetimefield_value(now)],
        )
        msg_id = cursor.fetchone()[0]
    # The sender's side has read up to here; hidden rows (not of members who left) come back.
    side, side_params = sender_side.sql()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Participant._meta.db_table} SET hidden = %s, "
            f"last_read_seq = CASE WHEN {side} THEN %s ELSE last_read_seq END "
            f"WHERE conversation_id = %s AND ({side} OR (hidden = %s AND left_seq IS NULL))",
            [False, *side_params, seq, conversation_id, *side_params, True],
        )
    stored = Stored(msg_id=msg_id, chat_id=chat_id, seq=seq, createtime=unix(now), client_msg_id=client_msg_id)
    return stored, conversation_id


def conversation_open_private(*, user: User, peer: User) -> Conversation:
    """The private conversation of two users, created with both parties' rows on first use."""
    chat_id = ids.private_chat_id(user.pk, peer.pk)
    try:
        with transaction.atomic():
            conversation, created = Conversation.objects.get_or_create(
                chat_id=chat_id, defaults={"chat_type": ChatType.PRIVATE}
            )
            if created:
                Participant.objects.bulk_create(
                    [
                        Participant(conversation=conversation, user=user, peer_user=peer),
                        Participant(conversation=conversation, user=peer, peer_user=user),
                    ]
                )
    except IntegrityError:
        conversation = Conversation.objects.get(chat_id=chat_id)
    return conversation


@dataclass(frozen=True)
class PrivateDraft:
    """A private message whose addressing is checked, ready to store."""

    caller: Caller
    chat_id: str
    peer_id: int
    msg_type: int
    msg: str
    client_msg_id: str | None


def private_draft(*, caller: Caller, to_uid: int | None, chat_id: str | None, msg_type: int, msg: str,
                  client_msg_id: str | None) -> PrivateDraft:
    """Check who a private message goes to (no database work: the conversation's row answers that)."""
    sender_id = caller.uid
    if chat_id:
        ref = ids.parse_chat_id(chat_id)
        if ref.chat_type != ChatType.PRIVATE:
            raise bad_request("chat_id: not a private chat")
        if sender_id not in (ref.a, ref.b):
            raise forbidden("not a participant of this chat")
        peer_id = ref.b if ref.a == sender_id else ref.a
        if to_uid is not None and to_uid != peer_id:
            raise bad_request("chat_id: does not match to_uid")
    elif to_uid is None:
        raise bad_request("to_uid: required")
    else:
        peer_id = to_uid
    if peer_id == sender_id:
        raise bad_request("to_uid: cannot message yourself")
    return PrivateDraft(caller=caller, chat_id=ids.private_chat_id(sender_id, peer_id), peer_id=peer_id,
                        msg_type=msg_type, msg=msg, client_msg_id=client_msg_id)


def private_message_send(
    *,
    caller: Caller,
    to_uid: int | None,
    chat_id: str | None,
    msg_type: int,
    msg: str,
    client_msg_id: str | None,
) -> Stored:
    draft = private_draft(caller=caller, to_uid=to_uid, chat_id=chat_id, msg_type=msg_type, msg=msg,
                          client_msg_id=client_msg_id)
    with transaction.atomic():
        stored = _append_private(draft)
        if stored is None:
            peer = User.objects.filter(pk=draft.peer_id, is_active=True).first()
            if peer is None:
                raise not_found("to_uid: no such user")
            conversation_open_private(user=caller.user, peer=peer)
            stored = _append_private(draft)
        _push_private(draft, stored)
    return stored


def _push_private(draft: PrivateDraft, stored: Stored) -> None:
    caller = draft.caller
    result = message_result(
        nickname=caller.user.display_name,
        avatar=caller.avatar_url,
        sender_id=caller.uid,
        chat_id=draft.chat_id,
        chat_type=ChatType.PRIVATE,
        msg_type=draft.msg_type,
        msg=draft.msg,
        createtime=stored.createtime,
        msg_id=stored.msg_id,
        seq=stored.seq,
        from_uid=caller.uid,
        to_uid=draft.peer_id,
        client_msg_id=draft.client_msg_id,
    )
    push_message(result, receivers=[realtime.user_group(draft.peer_id)], caller=caller)


def private_messages_send_batch(drafts: list[PrivateDraft]) -> list[Stored | None]:
    """Store many private messages at once: what `private_message_send` does, for a whole batch.

    The hot path under load. On PostgreSQL it is one statement (atomic on its own: one round trip
    for the batch); elsewhere one transaction of `message_append`s. A draft whose conversation does
    not exist yet gets None (its first message opens it, one by one). A client_msg_id stored before
    raises IntegrityError and nothing is stored: the caller then sends the batch one by one, where a
    resend answers with the stored message.
    """
    now = timezone.now()
    if connection.vendor == "postgresql":
        stored = _append_private_batch(drafts, now)
    else:
        with transaction.atomic():
            stored = [_append_private(draft, now) for draft in drafts]
    for draft, one in zip(drafts, stored):  # after the commit (inside an outer transaction: on its commit)
        if one is not None:
            _push_private(draft, one)
    return stored


def _append_private(draft: PrivateDraft, now: datetime | None = None) -> Stored | None:
    """message_append for one private draft; None if its conversation does not exist yet."""
    appended = message_append(
        chat_id=draft.chat_id, chat_type=ChatType.PRIVATE, sender_id=draft.caller.uid,
        sender_side=Side(user_id=draft.caller.uid), sent_as=SentAs.USER, msg_type=draft.msg_type, msg=draft.msg,
        to_uid=draft.peer_id, client_msg_id=draft.client_msg_id, now=now,
    )
    return None if appended is None else appended[0]


# message_append for a batch, in one PostgreSQL statement. Conversations are locked in id order
# (no deadlock between processes) before each message takes the next seq of its conversation;
# the newest message of each conversation becomes its summary; each sender's read marker moves to
# the last seq they sent, and hidden rows (not of members who left) come back.
_PRIVATE_BATCH_SQL = f"""
WITH input AS (
    SELECT * FROM unnest(%(chat_id)s::text[], %(sender_id)s::bigint[], %(to_uid)s::bigint[],
                         %(msg_type)s::smallint[], %(msg)s::text[], %(client_msg_id)s::text[])
        WITH ORDINALITY AS i(chat_id, sender_id, to_uid, msg_type, msg, client_msg_id, ord)
), locked AS (
    SELECT id, chat_id, last_seq FROM {Conversation._meta.db_table}
    WHERE chat_id IN (SELECT chat_id FROM input) ORDER BY id FOR UPDATE
), placed AS (
    SELECT i.*, l.id AS conversation_id, l.last_seq + row_number() OVER (PARTITION BY l.id ORDER BY i.ord) AS seq
    FROM input i JOIN locked l USING (chat_id)
), inserted AS (
    INSERT INTO {Message._meta.db_table}
        (conversation_id, seq, sender_id, sent_as, chat_type, msg_type, msg, to_uid, client_msg_id, created_at)
    SELECT conversation_id, seq, sender_id, {int(SentAs.USER)}, {int(ChatType.PRIVATE)}, msg_type, msg, to_uid,
           client_msg_id, %(now)s
    FROM placed
    RETURNING id, conversation_id, seq
), bumped AS (
    UPDATE {Conversation._meta.db_table} AS c
    SET last_seq = p.seq, last_msg = left(p.msg, {SUMMARY_CHARS}), last_msg_type = p.msg_type,
        last_uid = p.sender_id, last_time = %(now)s
    FROM (SELECT DISTINCT ON (conversation_id) * FROM placed ORDER BY conversation_id, seq DESC) AS p
    WHERE c.id = p.conversation_id
), marked AS (
    UPDATE {Participant._meta.db_table} AS t
    SET hidden = FALSE,
        last_read_seq = COALESCE((SELECT max(p.seq) FROM placed p
                                  WHERE p.conversation_id = t.conversation_id AND p.sender_id = t.user_id),
                                 t.last_read_seq)
    WHERE t.conversation_id IN (SELECT conversation_id FROM placed)
      AND ((t.hidden AND t.left_seq IS NULL)
           OR t.user_id IN (SELECT p.sender_id FROM placed p WHERE p.conversation_id = t.conversation_id))
)
SELECT p.ord, m.id, m.seq FROM inserted m JOIN placed p ON p.conversation_id = m.conversation_id AND p.seq = m.seq
"""


def _append_private_batch(drafts: list[PrivateDraft], now: datetime) -> list[Stored | None]:
    """What was stored per draft, or None where the conversation does not exist."""
    params = {
        "chat_id": [draft.chat_id for draft in drafts],
        "sender_id": [draft.caller.uid for draft in drafts],
        "to_uid": [draft.peer_id for draft in drafts],
        "msg_type": [draft.msg_type for draft in drafts],
        "msg": [draft.msg for draft in drafts],
        "client_msg_id": [draft.client_msg_id for draft in drafts],
        "now": now,
    }
    connection.ensure_connection()
    # A plain psycopg cursor: server-side parameters, and the statement is prepared once per
    # connection (Django's client-side cursor would quote every value into the text each time).
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_PRIVATE_BATCH_SQL, params, prepare=True)
        rows = cursor.fetchall()
    stored: list[Stored | None] = [None] * len(drafts)
    for ord_, msg_id, seq in rows:
        draft = drafts[ord_ - 1]
        stored[ord_ - 1] = Stored(msg_id=msg_id, chat_id=draft.chat_id, seq=seq, createtime=unix(now),
                                  client_msg_id=draft.client_msg_id)
    return stored


def push_message(result: dict, *, receivers: list[str], caller: Caller | None) -> None:
    """200 to the receivers; 307 to the sender's other sockets (the compat client draws 200 as theirs)."""
    result_json = realtime.push_on_commit(receivers, Code.MESSAGE, result)
    if caller is not None:
        realtime.push_on_commit(
            [realtime.user_group(caller.uid)],
            Code.OWN_MESSAGE,
            result,
            exclude_channel=caller.channel_name,
            result_json=result_json,
        )


def validate_message_body(*, msg_type: int, msg: str, max_chars: int) -> None:
    if msg_type not in MsgType.values:
        raise bad_request("msg_type: must be 1 (text) or 2 (image)")
    if len(msg) > max_chars:
        raise bad_request(f"msg: at most {max_chars} characters")
    if msg_type == MsgType.IMAGE and not msg.startswith(("http://", "https://")):
        raise bad_request("msg: an image message must be an absolute http(s) URL")


def participant_for(*, caller: Caller, chat_id: str, shop_id: int | None = None, active: bool = False) -> Participant:
    """The caller's row (or, with shop_id, the shop side's) of a conversation, or -404.

    With `active`, a member who left (or whose group was dissolved) gets -403: they may still
    read what they saw, but not act in the conversation.
    """
    ids.parse_chat_id(chat_id)
    query = Participant.objects.select_related("conversation").filter(conversation__chat_id=chat_id)
    if shop_id is None:
        query = query.filter(user_id=caller.uid)
    else:
        query = query.filter(user__isnull=True, shop_id=shop_id)
    participant = query.first()
    if participant is None:
        raise not_found("chat_id: no such conversation")
    if active and participant.left_seq is not None:
        raise forbidden("not a member of this conversation any more")
    return participant


def peer_groups(participant: Participant, *, exclude_user_id: int | None = None) -> list[str]:
    """Groups reaching every other party of a private or customer-service conversation."""
    conversation = participant.conversation
    if conversation.chat_type in (ChatType.GROUP, ChatType.SYSTEM):
        return []  # the platform reads no receipts (and sys_0 is shared by every user)
    groups = []
    others = Participant.objects.filter(conversation_id=conversation.pk).exclude(pk=participant.pk)
    for user_id, shop_id in others.values_list("user_id", "shop_id"):
        if user_id is not None and user_id != exclude_user_id:
            groups.append(realtime.user_group(user_id))
        elif user_id is None:
            groups.append(realtime.shop_agents_group(shop_id))
    return groups


def push_to_parties(participant: Participant, caller: Caller, code: int, payload: dict, *,
                    shop_id: int | None = None) -> None:
    """An event about what the caller just did: to the other parties and to the caller's other
    sockets (or the shop's other agents), never to the acting socket (PROTOCOL.md section 2)."""
    conversation = participant.conversation
    if conversation.chat_type == ChatType.GROUP:
        # One push to the group's channel group, which the caller's own sockets are in too.
        realtime.push_on_commit([realtime.chat_group(conversation.group_id)], code, payload,
                                exclude_channel=caller.channel_name)
        return
    realtime.push_on_commit(peer_groups(participant, exclude_user_id=caller.uid), code, payload)
    own = realtime.shop_agents_group(shop_id) if shop_id is not None else realtime.user_group(caller.uid)
    realtime.push_on_commit([own], code, payload, exclude_channel=caller.channel_name)


@transaction.atomic
def conversation_mark_read(*, caller: Caller, chat_id: str, shop_id: int | None = None) -> int:
    """Set the unread count to 0; peers and the reader's other sockets get a 301 receipt."""
    participant = participant_for(caller=caller, chat_id=chat_id, shop_id=shop_id)
    conversation = participant.conversation
    read_seq = conversation.last_seq if participant.left_seq is None else participant.left_seq
    if read_seq > participant.last_read_seq:
        Participant.objects.filter(pk=participant.pk, last_read_seq__lt=read_seq).update(last_read_seq=read_seq)
    if participant.left_seq is None:  # a member who left reads quietly
        receipt = {"chat_id": chat_id, "reader_uid": caller.uid, "seq": read_seq}
        push_to_parties(participant, caller, Code.READ_RECEIPT, receipt, shop_id=shop_id)
    return read_seq


@transaction.atomic
def conversation_hide(*, caller: Caller, chat_id: str, shop_id: int | None = None) -> None:
    """Soft delete from the caller's list; messages stay, and a new one brings it back."""
    participant = participant_for(caller=caller, chat_id=chat_id, shop_id=shop_id)
    Participant.objects.filter(pk=participant.pk).update(hidden=True)


def typing_relay(*, caller: Caller, chat_id: str, shop_id: int | None = None) -> None:
    """302 to the other side and the typist's other sockets; never stored."""
    participant = participant_for(caller=caller, chat_id=chat_id, shop_id=shop_id, active=True)
    with transaction.atomic():
        push_to_parties(participant, caller, Code.TYPING, {"chat_id": chat_id, "uid": caller.uid},
                        shop_id=shop_id)


RECALLED_TEXT = "[recalled]"


@transaction.atomic
def message_recall(*, caller: Caller, msg_id: int, recall_seconds: int) -> Message:
    """The sender takes a message back: its text is replaced for everyone; all parties get 303."""
    message = (
        Message.objects.select_for_update(of=("self",)).select_related("conversation")
        .filter(pk=msg_id).first()
    )
    if message is None:
        raise not_found("msg_id: no such message")
    if message.sender_id != caller.uid:
        raise forbidden("only the sender may recall a message")
    if message.recalled_at is None:
        now = timezone.now()
        if (now - message.created_at).total_seconds() > recall_seconds:
            raise bad_request(f"msg_id: messages can be recalled within {recall_seconds} seconds")
        Message.objects.filter(pk=message.pk).update(msg=RECALLED_TEXT, msg_type=MsgType.TEXT, recalled_at=now)
        conversation = message.conversation
        if conversation.last_seq == message.seq:
            Conversation.objects.filter(pk=conversation.pk, last_seq=message.seq).update(
                last_msg=RECALLED_TEXT, last_msg_type=MsgType.TEXT
            )
        if message.sent_as == SentAs.SERVICE:
            own_side = Q(user__isnull=True, shop_id=message.shop_id)
        else:
            own_side = Q(user_id=caller.uid)
        side = Participant.objects.select_related("conversation").filter(own_side, conversation=conversation).first()
        event = {"msg_id": message.pk, "chat_id": conversation.chat_id, "seq": message.seq}
        if side is not None:
            push_to_parties(side, caller, Code.RECALLED, event,
                            shop_id=message.shop_id if message.sent_as == SentAs.SERVICE else None)
    return message
