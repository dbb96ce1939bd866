"""Group chat writes: create, invite, leave, kick, rename, mute, dissolve, and messages to a group.

A member is a Participant of the group's conversation with a role. Leaving or being kicked sets
`left_seq`, so the member keeps what they saw and nothing after; the row stays, and with it `muted`
and `kicked`, so neither is undone by leaving and being invited back. A group message is one
`group_send` to the group's channel-layer group, which members' sockets join on connect and on
invite, on every process.
"""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from chat import ids, realtime
from chat.inputs import SendInput
from chat.messages import Author, Draft, Plan, Side, Stored, message_store
from chat.models import ChatGroup, ChatType, Conversation, Participant, SentAs
from chat.protocol import Caller
from imchat.errors import AppError, Code, bad_request, forbidden, not_found
from imchat.links import absolute_url

Role = Participant.Role
MANAGERS = (Role.OWNER, Role.ADMIN)
NAME_CHARS = 64


def _active_members(conversation_id: int):
    return Participant.objects.filter(conversation_id=conversation_id, left_seq__isnull=True, user__isnull=False)


def _group_event(group: ChatGroup, event: str, uids: list[int], name: str | None = None) -> dict:
    return {"group_id": group.pk, "chat_id": ids.group_chat_id(group.pk), "event": event, "uids": uids,
            "name": name if name is not None else group.name}


def _existing_users(uids: list[int]) -> list[int]:
    found = set(User.objects.filter(pk__in=uids, is_active=True).values_list("pk", flat=True))
    unknown = [uid for uid in uids if uid not in found]
    if unknown:
        raise not_found(f"uids: no such user {unknown[0]}")
    return list(dict.fromkeys(uids))


def member_for(*, caller: Caller, group_id: int, lock: bool = False) -> tuple[ChatGroup, Participant]:
    """The group and the caller's active membership; -404 for no group, -403 for not a member."""
    group = ChatGroup.objects.filter(pk=group_id).first()
    if group is None or group.dissolved_at is not None:
        raise not_found("group_id: no such group")
    query = Participant.objects.select_related("conversation").filter(
        conversation__group_id=group_id, user_id=caller.uid, left_seq__isnull=True
    )
    if lock:
        query = query.select_for_update(of=("self",))
    member = query.first()
    if member is None:
        raise forbidden("not a member of this group")
    return group, member


def _require_manager(member: Participant) -> None:
    if member.role not in MANAGERS:
        raise forbidden("only the group's owner or an admin may do this")


def _require_above(me: Participant, target: Participant) -> None:
    """Kick and mute: nobody acts on the owner, and only the owner on an admin (so an admin muted by
    the owner cannot unmute themself)."""
    if target.role == Role.OWNER or (target.role == Role.ADMIN and me.role != Role.OWNER):
        raise forbidden("uid: nobody may do this to the owner, and only the owner to an admin")


def _check_size(conversation: Conversation, adding: int) -> None:
    if _active_members(conversation.pk).count() + adding > settings.IM_MAX_GROUP_MEMBERS:
        raise bad_request(f"uids: a group has at most {settings.IM_MAX_GROUP_MEMBERS} members")


def _push_invited(group: ChatGroup, invited: list[int], caller: Caller, *, creator: int | None = None) -> None:
    """306 invited, `uids` only the users just invited: to the members already in the channel group,
    and to the sockets of the invited (and of the creator), which join the group's channel group on
    the way (the acting socket joins but is not told)."""
    event = _group_event(group, "invited", invited)
    realtime.push_on_commit([realtime.chat_group(group.pk)], Code.GROUP_EVENT, event,
                            exclude_channel=caller.channel_name)
    joining = [realtime.user_group(uid) for uid in (invited if creator is None else [creator, *invited])]
    realtime.push_on_commit(joining, Code.GROUP_EVENT, event, exclude_channel=caller.channel_name)
    realtime.membership_on_commit(joining, join=realtime.chat_group(group.pk))


@transaction.atomic
def group_create(*, caller: Caller, name: str, uids: list[int]) -> ChatGroup:
    others = [uid for uid in _existing_users(uids) if uid != caller.uid]
    if len(others) + 1 > settings.IM_MAX_GROUP_MEMBERS:
        raise bad_request(f"uids: a group has at most {settings.IM_MAX_GROUP_MEMBERS} members")
    group = ChatGroup.objects.create(name=name, owner=caller.user)
    conversation = Conversation.objects.create(chat_id=ids.group_chat_id(group.pk), chat_type=ChatType.GROUP,
                                               group=group, title=name)
    Participant.objects.bulk_create(
        [Participant(conversation=conversation, user_id=caller.uid, role=Role.OWNER)]
        + [Participant(conversation=conversation, user_id=uid) for uid in others]
    )
    _push_invited(group, others, caller, creator=caller.uid)
    return group


@transaction.atomic
def group_invite(*, caller: Caller, group_id: int, uids: list[int]) -> list[int]:
    """Any member adds newcomers and people who left; only the owner or an admin brings back someone
    who was kicked. Members already in are skipped. Returns the ids added, who see messages from now on."""
    group, me = member_for(caller=caller, group_id=group_id)
    wanted = _existing_users(uids)
    conversation = Conversation.objects.select_for_update().get(pk=me.conversation_id)
    rows = {p.user_id: p for p in Participant.objects.filter(conversation=conversation, user_id__in=wanted)}
    added = [uid for uid in wanted if uid not in rows or rows[uid].left_seq is not None]
    returning = [rows[uid] for uid in added if uid in rows]
    kicked = [row.user_id for row in returning if row.kicked]
    if kicked and me.role not in MANAGERS:
        raise forbidden(f"uids: {kicked[0]} was removed from this group; "
                        "only the owner or an admin may invite them back")
    _check_size(conversation, len(added))
    seq = conversation.last_seq
    Participant.objects.bulk_create([Participant(conversation=conversation, user_id=uid, joined_seq=seq,
                                                 last_read_seq=seq) for uid in added if uid not in rows])
    # Back as a plain member; `muted` stays as it was.
    Participant.objects.filter(pk__in=[row.pk for row in returning]).update(
        left_seq=None, joined_seq=seq, last_read_seq=seq, hidden=False, role=Role.MEMBER, kicked=False,
    )
    if added:
        _push_invited(group, added, caller)
    return added


def _remove(group: ChatGroup, member: Participant, event: str, caller: Caller) -> None:
    conversation = Conversation.objects.select_for_update().get(pk=member.conversation_id)
    Participant.objects.filter(pk=member.pk).update(left_seq=conversation.last_seq, kicked=event == "kicked")
    payload = _group_event(group, event, [member.user_id])
    # Members (the removed one included, still in the channel group) hear it; then the removed
    # user's sockets leave the channel group.
    realtime.push_on_commit([realtime.chat_group(group.pk)], Code.GROUP_EVENT, payload,
                            exclude_channel=caller.channel_name)
    realtime.membership_on_commit([realtime.user_group(member.user_id)], leave=realtime.chat_group(group.pk))


@transaction.atomic
def group_leave(*, caller: Caller, group_id: int) -> None:
    group, member = member_for(caller=caller, group_id=group_id, lock=True)
    if member.role == Role.OWNER:
        raise bad_request("group_id: the owner cannot leave; dissolve the group instead")
    _remove(group, member, "left", caller)


@transaction.atomic
def group_kick(*, caller: Caller, group_id: int, uid: int) -> None:
    group, me = member_for(caller=caller, group_id=group_id)
    _require_manager(me)
    target = (
        Participant.objects.select_for_update()
        .filter(conversation_id=me.conversation_id, user_id=uid, left_seq__isnull=True)
        .first()
    )
    if target is None:
        raise not_found("uid: not a member of this group")
    if target.user_id == caller.uid:
        raise bad_request("uid: use group.leave to leave")
    _require_above(me, target)
    _remove(group, target, "kicked", caller)


@transaction.atomic
def group_rename(*, caller: Caller, group_id: int, name: str) -> None:
    group, me = member_for(caller=caller, group_id=group_id)
    _require_manager(me)
    ChatGroup.objects.filter(pk=group.pk).update(name=name)
    Conversation.objects.filter(pk=me.conversation_id).update(title=name)
    group.name = name
    realtime.push_on_commit([realtime.chat_group(group.pk)], Code.GROUP_EVENT, _group_event(group, "renamed", []),
                            exclude_channel=caller.channel_name)


@transaction.atomic
def group_set_role(*, caller: Caller, group_id: int, uid: int, role: str) -> None:
    """The owner makes a member an admin, or an admin a member again."""
    group, me = member_for(caller=caller, group_id=group_id)
    if me.role != Role.OWNER:
        raise forbidden("only the group's owner may change roles")
    if role not in (Role.ADMIN, Role.MEMBER):
        raise bad_request("role: admin or member")
    updated = _active_members(me.conversation_id).filter(user_id=uid).exclude(role=Role.OWNER).update(role=role)
    if not updated:
        raise not_found("uid: not a member of this group")


@transaction.atomic
def group_mute(*, caller: Caller, group_id: int, uid: int, muted: bool) -> None:
    group, me = member_for(caller=caller, group_id=group_id)
    _require_manager(me)
    target = _active_members(me.conversation_id).filter(user_id=uid).first()
    if target is None:
        raise not_found("uid: not a member of this group")
    _require_above(me, target)
    Participant.objects.filter(pk=target.pk).update(muted=muted)


@transaction.atomic
def group_dissolve(*, caller: Caller, group_id: int) -> None:
    group, me = member_for(caller=caller, group_id=group_id)
    if me.role != Role.OWNER:
        raise forbidden("only the group's owner may dissolve it")
    conversation = Conversation.objects.select_for_update().get(pk=me.conversation_id)
    ChatGroup.objects.filter(pk=group.pk).update(dissolved_at=timezone.now())
    _active_members(conversation.pk).update(left_seq=conversation.last_seq)
    realtime.push_on_commit([realtime.chat_group(group.pk)], Code.GROUP_EVENT, _group_event(group, "dissolved", []),
                            exclude_channel=caller.channel_name)
    realtime.membership_on_commit([realtime.chat_group(group.pk)], leave=realtime.chat_group(group.pk))


def group_members(*, caller: Caller, group_id: int) -> dict:
    group, me = member_for(caller=caller, group_id=group_id)
    rows = _active_members(me.conversation_id).select_related("user").order_by("created_at", "pk")
    return {
        "group_id": group.pk,
        "members": [
            {"id": row.user_id, "nickname": row.user.display_name,
             "avatar": absolute_url(row.user.avatar, caller.base_url), "role": row.role}
            for row in rows
        ],
    }


def group_draft(*, caller: Caller, group_id: int, msg_type: int, msg: str, client_msg_id: str | None) -> Draft:
    """A message to a group: one push to the group's channel group reaches every member's sockets."""
    return Draft(
        chat_id=ids.group_chat_id(group_id), chat_type=ChatType.GROUP, msg_type=msg_type, msg=msg,
        author=Author(caller.user.display_name, caller.avatar_url, caller.uid), reads=Side(user_id=caller.uid),
        sent_as=SentAs.USER, to_uid=group_id, sender_id=caller.uid, client_msg_id=client_msg_id,
        receivers=(realtime.chat_group(group_id),), sender_socket=caller.channel_name, echo_in_receivers=True,
    )


def group_id_of(send: SendInput) -> int:
    """The group a chat.sendMsg names: chat_id `g<id>`, else to_uid."""
    if send.chat_id:
        ref = ids.parse_chat_id(send.chat_id)
        if ref.chat_type != ChatType.GROUP or (send.to_uid and send.to_uid != ref.a):
            raise bad_request("chat_id: does not match to_uid")
        return ref.a
    if not send.to_uid:
        raise bad_request("to_uid: required")
    return send.to_uid


def group_plan(items: list[tuple[int, Caller, SendInput]]) -> Plan:
    """Group messages of a batch: who may send is one statement for all of them (an active, unmuted
    member of a group that still exists); anyone else goes alone, to hear exactly why not."""
    plan = Plan()
    drafts = {}
    for index, caller, send in items:
        try:
            drafts[index] = group_draft(caller=caller, group_id=group_id_of(send), msg_type=send.msg_type,
                                        msg=send.msg, client_msg_id=send.client_msg_id)
        except AppError as error:
            plan.errors[index] = error
    allowed = set(
        Participant.objects.filter(
            conversation__chat_id__in={draft.chat_id for draft in drafts.values()},
            user_id__in={draft.sender_id for draft in drafts.values()},
            left_seq__isnull=True, muted=False, conversation__group__dissolved_at__isnull=True,
        ).values_list("conversation__chat_id", "user_id")
    ) if drafts else set()
    for index, draft in drafts.items():
        if (draft.chat_id, draft.sender_id) in allowed:
            plan.drafts[index] = draft
        else:
            plan.alone.append(index)
    return plan


@transaction.atomic
def group_message_send(*, caller: Caller, group_id: int, msg_type: int, msg: str,
                       client_msg_id: str | None) -> Stored:
    """Only active, unmuted members send; one group_send reaches every member's sockets."""
    group, me = member_for(caller=caller, group_id=group_id)
    if me.muted:
        raise forbidden("you are muted in this group")
    return message_store(group_draft(caller=caller, group_id=group_id, msg_type=msg_type, msg=msg,
                                     client_msg_id=client_msg_id))


def group_ids_of(user_id: int) -> list[int]:
    """Groups whose channel group a new socket of this user joins."""
    return list(
        Participant.objects.filter(user_id=user_id, left_seq__isnull=True, conversation__chat_type=ChatType.GROUP)
        .values_list("conversation__group_id", flat=True)
    )
