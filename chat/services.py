"""Chat writes other than storing a message (chat/messages.py): one atomic function each, pushing
only after commit. Private messages' policy lives here too: who a private message goes to.
"""

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from chat import ids, realtime
from chat.cards import Card
from chat.inputs import SendInput
from chat.messages import Author, Draft, Notify, Plan, Side, Stored, message_store
from chat.models import ChatType, Conversation, Message, MsgType, Participant, SentAs
from chat.protocol import Caller
from customer_service.offline import Role
from imchat.errors import AppError, Code, bad_request, forbidden, not_found


def conversation_open_private(*, user: User, peer: User) -> Conversation:
    """The private conversation of two users, created with both parties' rows on first use."""
    chat_id = ids.private_chat_id(user.pk, peer.pk)
    _private_conversations_create({chat_id: (user.pk, peer.pk)})
    return Conversation.objects.get(chat_id=chat_id)


def private_conversations_open(firsts: dict[int, Draft]) -> dict[int, AppError]:
    """The conversations of first private messages, each with both parties' rows: three statements
    in one transaction, however many (one may have been opened meanwhile, on another process: kept).
    A message to no active user gets -404 ({index: error})."""
    peers = set(User.objects.filter(pk__in={draft.to_uid for draft in firsts.values()}, is_active=True)
                .values_list("pk", flat=True))
    errors = {index: not_found("to_uid: no such user") for index, draft in firsts.items() if draft.to_uid not in peers}
    _private_conversations_create({draft.chat_id: (draft.sender_id, draft.to_uid)
                                   for index, draft in firsts.items() if index not in errors})
    return errors


@transaction.atomic
def _private_conversations_create(parties: dict[str, tuple[int, int]]) -> None:
    """{chat_id: (user_id, peer_id)}: each conversation and both rows, unless there already. Rows
    go in one order (chat_id, then user), so two processes opening the same ones wait for each other
    instead of deadlocking."""
    if not parties:
        return
    Conversation.objects.bulk_create(
        [Conversation(chat_id=chat_id, chat_type=ChatType.PRIVATE) for chat_id in sorted(parties)],
        ignore_conflicts=True)
    opened = Conversation.objects.filter(chat_id__in=parties).order_by("chat_id").values_list("chat_id", "pk")
    Participant.objects.bulk_create(
        [Participant(conversation_id=pk, user_id=user_id, peer_user_id=peer_id)
         for chat_id, pk in opened for user_id, peer_id in sorted((parties[chat_id], parties[chat_id][::-1]))],
        ignore_conflicts=True,
    )


def private_draft(*, caller: Caller, to_uid: int | None, chat_id: str | None, msg_type: int, msg: str,
                  client_msg_id: str | None, card: Card | None = None) -> Draft:
    """Who a private message goes to: no database work (the conversation's row answers the rest)."""
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
    return Draft(
        chat_id=ids.private_chat_id(sender_id, peer_id), chat_type=ChatType.PRIVATE, msg_type=msg_type, msg=msg,
        author=Author(caller.user.display_name, caller.avatar_url, sender_id), reads=Side(user_id=sender_id),
        sent_as=SentAs.USER, to_uid=peer_id, sender_id=sender_id, client_msg_id=client_msg_id,
        receivers=(realtime.user_group(peer_id),), sender_socket=caller.channel_name, card=card,
        notify=_private_notify(peer_id),
    )


def _private_notify(peer_id: int) -> Notify | None:
    seconds = settings.IM_OFFLINE_NOTIFY_SECONDS
    return Notify(peer_id, Role.USER, seconds) if seconds > 0 else None


def private_plan(items: list[tuple[int, Caller, SendInput]]) -> Plan:
    """Private messages of a batch: all stored together; the conversations of first messages (the
    store answers None) are opened together, then those are stored."""
    plan = Plan(open_conversations=private_conversations_open)
    for index, caller, send in items:
        try:
            plan.drafts[index] = private_draft(caller=caller, to_uid=send.to_uid, chat_id=send.chat_id,
                                               msg_type=send.msg_type, msg=send.msg, client_msg_id=send.client_msg_id,
                                               card=send.card)
        except AppError as error:
            plan.errors[index] = error
    return plan


@transaction.atomic
def private_message_send(*, caller: Caller, to_uid: int | None, chat_id: str | None, msg_type: int, msg: str,
                         client_msg_id: str | None, card: Card | None = None) -> Stored:
    """One private message; the first one between two users opens their conversation."""
    draft = private_draft(caller=caller, to_uid=to_uid, chat_id=chat_id, msg_type=msg_type, msg=msg,
                          client_msg_id=client_msg_id, card=card)
    stored = message_store(draft)
    if stored is None:
        error = private_conversations_open({0: draft}).get(0)
        if error is not None:
            raise error
        stored = message_store(draft)
    return stored


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
        Message.objects.filter(pk=message.pk).update(msg=RECALLED_TEXT, msg_type=MsgType.TEXT, card=None,
                                                     recalled_at=now)
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
