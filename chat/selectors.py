"""Chat reads: each list is one indexed query."""

from datetime import UTC, datetime
from typing import Any

from django.db.models import F, Q

from accounts.models import User
from chat import ids
from chat.models import ChatType, Message, Participant, SentAs
from chat.payloads import message_result_from_row, recent_row, record_row, unix
from chat.presence import presence
from chat.protocol import Caller
from imchat.errors import bad_request, not_found
from imchat.links import absolute_url

RECORD_PAGE_SIZE = 20  # the original's default page
RECENT_LIMIT = 200
FRIEND_SUGGESTIONS = 10
LATEST_FIRST = F("conversation__last_time").desc(nulls_last=True)


def recent_chats(*, caller: Caller, shop_ids: list[int] | None = None) -> dict[str, Any]:
    """The caller's conversation list, newest first; with shop_ids, those shops' side instead."""
    query = Participant.objects.select_related("conversation", "peer_user").filter(hidden=False).exclude(
        # A notice box with nothing for this user yet (announcements sent before they joined).
        conversation__chat_type=ChatType.SYSTEM, conversation__last_seq__lte=F("joined_seq")
    )
    if shop_ids is None:
        query = query.filter(user_id=caller.uid)
    else:
        query = query.filter(user__isnull=True, shop_id__in=shop_ids)
    participants = list(query.order_by(LATEST_FIRST, "-conversation_id")[:RECENT_LIMIT])
    rows = [recent_row(participant, caller.uid, caller.base_url) for participant in participants]
    if _summaries_as_of_leaving(participants, rows):
        rows.sort(key=lambda row: row["last_time"], reverse=True)
    return {"rows": rows, "unread_count": sum(row["unread_count"] for row in rows)}


def _summaries_as_of_leaving(participants: list[Participant], rows: list[dict]) -> bool:
    """A member who left sees the last message of their time in the group, not what came after.

    Returns whether any row changed (its place in the list may change with it)."""
    left = {
        (p.conversation_id, p.left_seq): row
        for p, row in zip(participants, rows)
        if p.left_seq is not None and p.left_seq < p.conversation.last_seq
    }
    if not left:
        return False
    wanted = Q()
    for conversation_id, seq in left:
        wanted |= Q(conversation_id=conversation_id, seq=seq)
    for message in Message.objects.filter(wanted):
        row = left.pop((message.conversation_id, message.seq))
        row.update(last_msg=message.msg[:255], last_uid=message.from_uid, last_time=unix(message.created_at),
                   msg_type=message.msg_type)
    for row in left.values():  # left before any message
        row.update(last_msg="", last_uid=0)
    return True


def visible_messages(participant: Participant):
    """The messages this party may read: those after it joined and, if it left, until then."""
    query = Message.objects.filter(conversation_id=participant.conversation_id, seq__gt=participant.joined_seq)
    if participant.left_seq is not None:
        query = query.filter(seq__lte=participant.left_seq)
    return query


def chat_record(*, caller: Caller, participant: Participant | None, page: int) -> dict[str, Any]:
    """A page of history, newest first (the original's `user/getChatRecord`)."""
    if participant is None:
        return {"rows": [], "total": 0}
    messages = visible_messages(participant)
    total = messages.count()
    start = (page - 1) * RECORD_PAGE_SIZE
    page_rows = list(messages.select_related("conversation", "sender")
                     .order_by("-seq")[start : start + RECORD_PAGE_SIZE])
    rows = [record_row(message, caller.base_url, mine=_is_mine(message, participant, caller.uid)) for message in page_rows]
    return {"rows": with_guard_marks(rows, page_rows, participant), "total": total}


def with_guard_marks(rows: list[dict], messages: list[Message], participant: Participant) -> list[dict]:
    """The shop side's history shows what the contact guard flagged (ext `guard`: the kinds found);
    the consumer's side never does."""
    if participant.user_id is None:
        for row, message in zip(rows, messages):
            if message.guard_kinds:
                row["guard"] = message.guard_kinds.split(",")
    return rows


def _is_mine(message: Message, participant: Participant, viewer_id: int) -> bool:
    """On the shop side of a customer-service chat everything the shop said is "mine" (any agent's
    answer, the shop's notices): the original client draws the agent's own side from it."""
    if participant.user_id is None:
        return message.sent_as != SentAs.USER
    return message.sender_id == viewer_id


def record_participant(*, caller: Caller, chat_id: str | None, to_uid: int | None, chat_type: int | None,
                       shop_side: int | None = None) -> Participant | None:
    """The row whose history a record request asks for: by chat_id, or by to_uid + chat_type."""
    if not chat_id:
        if to_uid is None or chat_type is None:
            raise bad_request("chat_id: required (or to_uid and chat_type)")
        chat_id = chat_id_for(caller=caller, to_uid=to_uid, chat_type=chat_type)
    ref = ids.parse_chat_id(chat_id)
    query = Participant.objects.select_related("conversation").filter(conversation__chat_id=ref.chat_id)
    if shop_side is not None:
        participant = query.filter(user__isnull=True, shop_id=shop_side).first()
    else:
        participant = query.filter(user_id=caller.uid).first()
    if participant is None and not _could_take_part(caller, ref):
        raise not_found("chat_id: no such conversation")
    return participant


def _could_take_part(caller: Caller, ref: ids.ChatRef) -> bool:
    """A conversation the caller would be in once it starts (an empty history, not an error)."""
    if ref.chat_type == ChatType.PRIVATE:
        return caller.uid in (ref.a, ref.b)
    if ref.chat_type == ChatType.SERVICE:
        return caller.uid == ref.b
    if ref.chat_type == ChatType.SYSTEM:
        return caller.uid == ref.a
    return False


def chat_id_for(*, caller: Caller, to_uid: int, chat_type: int) -> str:
    if chat_type == ChatType.PRIVATE:
        return ids.private_chat_id(caller.uid, to_uid)
    if chat_type == ChatType.SERVICE:
        return ids.service_chat_id(to_uid, caller.uid)
    if chat_type == ChatType.GROUP:
        return ids.group_chat_id(to_uid)
    if chat_type == ChatType.SYSTEM:
        return ids.system_chat_id(caller.uid)
    raise bad_request("chat_type: must be 1, 2, 3 or 4")


def friend_list(*, caller: Caller) -> dict[str, Any]:
    """`user/index`: the users the caller chats with privately, latest first, with online count."""
    partners = list(
        Participant.objects.filter(
            user_id=caller.uid, conversation__chat_type=ChatType.PRIVATE, peer_user__is_active=True
        )
        .select_related("peer_user", "conversation")
        .order_by(LATEST_FIRST)[:RECENT_LIMIT]
    )
    friends = [participant.peer_user for participant in partners]
    if not friends:
        # A new user gets a few people to talk to, so the compat client's list is not empty.
        friends = list(
            User.objects.filter(~Q(pk=caller.uid), is_active=True).order_by("-last_login", "pk")[:FRIEND_SUGGESTIONS]
        )
    online = presence().online(friend.pk for friend in friends)
    return {
        "mine": {"id": caller.uid, "nickname": caller.user.display_name, "avatar": caller.avatar_url},
        "friend": [
            {
                "groupname": "我的好友",
                "id": 1,
                "online": len(online),
                "list": [
                    {
                        "username": friend.display_name,
                        "avatar": absolute_url(friend.avatar, caller.base_url),
                        "id": friend.pk,
                        "sign": friend.sign,
                    }
                    for friend in friends
                ],
            }
        ],
    }




SYNC_DEFAULT_LIMIT = 200
SYNC_MAX_LIMIT = 500


def sync_messages(*, caller: Caller, cursors: dict[str, int], since: int | None, limit: int,
                  shop_ids: list[int]) -> dict[str, Any]:
    """Messages after each cursor (and, with `since`, in the caller's other conversations), in order."""
    rows = Participant.objects.filter(Q(user_id=caller.uid) | Q(user__isnull=True, shop_id__in=shop_ids))
    if since is None:
        rows = rows.filter(conversation__chat_id__in=list(cursors))
    wanted = Q()
    for participant in rows.select_related("conversation"):
        chat_id = participant.conversation.chat_id
        if chat_id in cursors:
            after = max(cursors[chat_id], participant.joined_seq)
            condition = Q(conversation_id=participant.conversation_id, seq__gt=after)
        elif since is not None:
            condition = Q(conversation_id=participant.conversation_id, seq__gt=participant.joined_seq,
                          created_at__gte=datetime.fromtimestamp(since, tz=UTC))
        else:
            continue
        if participant.left_seq is not None:
            condition &= Q(seq__lte=participant.left_seq)
        wanted |= condition
    if not wanted:
        return {"messages": [], "more": False}
    found = list(
        Message.objects.filter(wanted).select_related("conversation", "sender")
        .order_by("conversation_id", "seq")[: limit + 1]
    )
    return {
        "messages": [message_result_from_row(message, caller.base_url) for message in found[:limit]],
        "more": len(found) > limit,
    }
