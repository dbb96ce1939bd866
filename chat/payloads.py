"""The one dict shape of each thing the server sends (PROTOCOL.md sections 4 and 7)."""

from datetime import datetime
from typing import Any

from django.conf import settings

from chat.models import ChatType, Message, Participant, SentAs
from imchat.links import absolute_url


def unix(moment: datetime | None) -> int:
    return int(moment.timestamp()) if moment is not None else 0


def message_result(
    *,
    nickname: str,
    avatar: str,
    sender_id: int | None,
    chat_id: str,
    chat_type: int,
    msg_type: int,
    msg: str,
    createtime: int,
    msg_id: int,
    seq: int,
    from_uid: int,
    to_uid: int,
    client_msg_id: str | None,
    shop_id: int | None = None,
    service_nickname: str | None = None,
    service_avatar: str | None = None,
    card: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A chat message as pushed with code 200/307 (compat fields first, in the original's order)."""
    result: dict[str, Any] = {"nickname": nickname, "avatar": avatar}
    if sender_id is not None:
        result["id"] = sender_id
    result.update(chat_id=chat_id, chat_type=chat_type, msg_type=msg_type, msg=msg, createtime=createtime)
    if chat_type == ChatType.SERVICE:
        result["shop_id"] = shop_id or 0
        if service_nickname is not None:
            result["service_nickname"] = service_nickname
            result["service_avatar"] = service_avatar
    result.update(msg_id=msg_id, seq=seq, from_uid=from_uid, to_uid=to_uid, client_msg_id=client_msg_id)
    if card is not None:  # ext, only on a card's message: every other message keeps its exact shape
        result["card"] = card
    return result


def message_result_from_row(message: Message, base_url: str) -> dict[str, Any]:
    """The push shape for a stored message; needs `conversation` and `sender` loaded."""
    conversation = message.conversation
    common = dict(
        chat_id=conversation.chat_id,
        chat_type=message.chat_type,
        msg_type=message.msg_type,
        msg=message.msg,
        createtime=unix(message.created_at),
        msg_id=message.pk,
        seq=message.seq,
        from_uid=message.from_uid,
        to_uid=message.to_uid,
        client_msg_id=message.client_msg_id,
        shop_id=message.shop_id,
        card=message.card,
    )
    if message.sent_as == SentAs.USER and message.sender is not None:
        return message_result(
            nickname=message.sender.display_name,
            avatar=absolute_url(message.sender.avatar, base_url),
            sender_id=message.sender_id,
            **common,
        )
    nickname, avatar = party_display(conversation.chat_type, conversation.title, conversation.avatar, base_url)
    service = message.sender if message.sent_as == SentAs.SERVICE else None
    return message_result(
        nickname=nickname,
        avatar=avatar,
        sender_id=None,
        service_nickname=service.display_name if service else None,
        service_avatar=absolute_url(service.avatar, base_url) if service else None,
        **common,
    )


def party_display(chat_type: int, title: str, avatar: str, base_url: str) -> tuple[str, str]:
    """Name and absolute avatar of a non-user party: a group, a shop, or the platform."""
    if chat_type == ChatType.SYSTEM:
        return settings.IM_SYSTEM_NAME, absolute_url(avatar, base_url)
    return title, absolute_url(avatar, base_url)


def unread_count(participant: Participant) -> int:
    last_visible = participant.conversation.last_seq
    if participant.left_seq is not None:
        last_visible = min(last_visible, participant.left_seq)
    return max(0, last_visible - participant.last_read_seq)


def recent_row(participant: Participant, viewer_id: int, base_url: str) -> dict[str, Any]:
    """A conversation-list row; needs `conversation` and `peer_user` loaded."""
    conversation = participant.conversation
    chat_type = conversation.chat_type
    if participant.peer_user is not None:
        friend_uid = participant.peer_user_id
        friend_name = participant.peer_user.display_name
        friend_avatar = absolute_url(participant.peer_user.avatar, base_url)
    else:
        friend_uid = {ChatType.GROUP: conversation.group_id, ChatType.SERVICE: conversation.shop_id}.get(chat_type, 0)
        friend_name, friend_avatar = party_display(chat_type, conversation.title, conversation.avatar, base_url)
    return {
        "id": participant.pk,
        "uid": viewer_id,
        "chat_id": conversation.chat_id,
        "shop_id": conversation.shop_id or 0,
        "friend_uid": friend_uid or 0,
        "friend_name": friend_name,
        "friend_avatar": friend_avatar,
        "last_msg": conversation.last_msg,
        "last_uid": conversation.last_uid,
        "last_time": unix(conversation.last_time or conversation.created_at),
        "chat_type": chat_type,
        "msg_type": conversation.last_msg_type,
        "unread_count": unread_count(participant),
    }


def record_row(message: Message, base_url: str, *, mine: bool) -> dict[str, Any]:
    """A `user/getChatRecord` row; needs `conversation` and `sender` loaded."""
    pushed = message_result_from_row(message, base_url)
    return {
        "avatar": pushed["avatar"],
        "nickname": pushed["nickname"],
        "chat_id": pushed["chat_id"],
        "from_uid": pushed["from_uid"],
        "to_uid": pushed["to_uid"],
        "chat_type": pushed["chat_type"],
        "msg_type": pushed["msg_type"],
        "msg": pushed["msg"],
        "createtime": pushed["createtime"],
        "mine": mine,
        "msg_id": pushed["msg_id"],
        "seq": pushed["seq"],
        **{key: pushed[key] for key in ("shop_id", "service_nickname", "service_avatar", "card") if key in pushed},
    }
