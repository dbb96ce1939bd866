"""The (class, action) -> handler table, and running one request.

A handler reads its content, calls one service or selector, and returns (code, result). Errors are
raised as AppError; `run` renders them. This module is the wiring between the apps.
"""

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from django.conf import settings

from chat import groups, ids, notices, realtime, selectors, sending, services, sockets
from chat.inputs import read_chat_id, read_role_is_service, read_send
from chat.protocol import INT64_MAX, Caller, Envelope, error_reply, read_bool, read_int, read_int_list, read_str, reply
from customer_service import desk_handlers
from customer_service import handlers as service_handlers
from customer_service import selectors as service_selectors
from customer_service import services as service_services
from customer_service import sockets as service_sockets
from customer_service import webhooks as service_webhooks
from imchat import outages
from imchat.errors import AppError, Code, bad_request, forbidden
from imchat.links import default_base_url

logger = logging.getLogger(__name__)

Handler = Callable[[Caller, dict], tuple[int, Any]]

LAST_UNIX_SECOND = 253402300799  # 9999-12-31T23:59:59Z: datetime cannot go further


def send_msg(caller: Caller, content: dict) -> tuple[int, Any]:
    """One chat.sendMsg (over HTTP, say): the batch pipeline with a batch of one."""
    outcome = sending.send_many([(caller, read_send(content))])[0]
    if isinstance(outcome, AppError):
        raise outcome
    return Code.OK, outcome.as_reply()


def _shop_side(caller: Caller, content: dict, chat_id: str) -> int | None:
    return service_selectors.shop_side_of(caller.user, chat_id) if read_role_is_service(content) else None


def set_chat_read(caller: Caller, content: dict) -> tuple[int, Any]:
    chat_id = read_chat_id(content)
    seq = services.conversation_mark_read(caller=caller, chat_id=chat_id, shop_id=_shop_side(caller, content, chat_id))
    return Code.OK, {"chat_id": chat_id, "seq": seq}


def del_chat(caller: Caller, content: dict) -> tuple[int, Any]:
    chat_id = read_chat_id(content)
    services.conversation_hide(caller=caller, chat_id=chat_id, shop_id=_shop_side(caller, content, chat_id))
    return Code.OK, None


def typing(caller: Caller, content: dict) -> tuple[int, Any]:
    chat_id = read_chat_id(content)
    services.typing_relay(caller=caller, chat_id=chat_id, shop_id=_shop_side(caller, content, chat_id))
    return Code.OK, None


def recent_chat(caller: Caller, content: dict) -> tuple[int, Any]:
    notices.announcements_box_ensure(caller.user)
    shop_ids = None
    if read_bool(content, "is_service"):
        shop_ids = service_selectors.served_shop_ids(caller.user)
        if not shop_ids:
            raise forbidden("not a service agent")
        only = read_int(content, "shop_id")
        if only:
            if only not in shop_ids:
                raise forbidden("not an agent of this shop")
            shop_ids = [only]
    return Code.RECENT_CHATS, selectors.recent_chats(caller=caller, shop_ids=shop_ids)


def friend_list(caller: Caller, content: dict) -> tuple[int, Any]:
    return Code.FRIEND_LIST, selectors.friend_list(caller=caller)


def _record_shop_side(caller: Caller, content: dict, chat_id: str) -> int | None:
    """role_type decides when sent; the compat client sends an agent's chat_id alone (PROTOCOL.md 6)."""
    if content.get("role_type") is not None:
        return _shop_side(caller, content, chat_id)
    return service_selectors.shop_side_unless_own(caller.user, chat_id)


def chat_record(caller: Caller, content: dict) -> tuple[int, Any]:
    chat_id = read_str(content, "chat_id", max_length=64)
    shop_side = _record_shop_side(caller, content, chat_id) if chat_id else None
    participant = selectors.record_participant(
        caller=caller,
        chat_id=chat_id,
        to_uid=read_int(content, "to_uid") or None,
        chat_type=read_int(content, "chat_type") or None,
        shop_side=shop_side,
    )
    page = read_int(content, "page", default=1, minimum=1)
    if page * selectors.RECORD_PAGE_SIZE > INT64_MAX:  # the row offset must fit the database's integer
        raise bad_request("page: out of range")
    return Code.CHAT_RECORD, selectors.chat_record(caller=caller, participant=participant, page=page)


def sync(caller: Caller, content: dict) -> tuple[int, Any]:
    chats = content.get("chats") or {}
    if not isinstance(chats, dict):
        raise bad_request("chats: must be an object of chat_id -> seq")
    if len(chats) > 1000:
        raise bad_request("chats: at most 1000 conversations")
    # A key holding NUL names no conversation (and PostgreSQL refuses it in a query): left out.
    cursors = {str(chat_id): read_int(chats, chat_id, default=0) for chat_id in chats if "\x00" not in chat_id}
    since = read_int(content, "since")
    if since is not None and since > LAST_UNIX_SECOND:
        raise bad_request("since: out of range")
    limit = min(read_int(content, "limit", default=selectors.SYNC_DEFAULT_LIMIT, minimum=1), selectors.SYNC_MAX_LIMIT)
    shop_ids = service_selectors.served_shop_ids(caller.user)
    return Code.OK, selectors.sync_messages(caller=caller, cursors=cursors, since=since, limit=limit,
                                            shop_ids=shop_ids)


def recall(caller: Caller, content: dict) -> tuple[int, Any]:
    message = services.message_recall(caller=caller, msg_id=read_int(content, "msg_id", required=True, minimum=1),
                                       recall_seconds=settings.IM_RECALL_SECONDS)
    return Code.OK, {"msg_id": message.pk, "chat_id": message.conversation.chat_id, "seq": message.seq}


def _group_id(content: dict) -> int:
    return read_int(content, "group_id", required=True, minimum=1)


def _group_name(content: dict) -> str:
    name = read_str(content, "name", required=True, max_length=groups.NAME_CHARS).strip()
    if not name:
        raise bad_request("name: required")
    return name


def group_create(caller: Caller, content: dict) -> tuple[int, Any]:
    group = groups.group_create(caller=caller, name=_group_name(content), uids=read_int_list(content, "uids"))
    return Code.OK, {"group_id": group.pk, "chat_id": ids.group_chat_id(group.pk), "name": group.name}


def group_invite(caller: Caller, content: dict) -> tuple[int, Any]:
    uids = read_int_list(content, "uids")
    if not uids:
        raise bad_request("uids: required")
    added = groups.group_invite(caller=caller, group_id=_group_id(content), uids=uids)
    return Code.OK, {"group_id": _group_id(content), "uids": added}


def group_leave(caller: Caller, content: dict) -> tuple[int, Any]:
    groups.group_leave(caller=caller, group_id=_group_id(content))
    return Code.OK, {"group_id": _group_id(content)}


def group_kick(caller: Caller, content: dict) -> tuple[int, Any]:
    uid = read_int(content, "uid", required=True, minimum=1)
    groups.group_kick(caller=caller, group_id=_group_id(content), uid=uid)
    return Code.OK, {"group_id": _group_id(content), "uid": uid}


def group_members(caller: Caller, content: dict) -> tuple[int, Any]:
    return Code.GROUP_MEMBERS, groups.group_members(caller=caller, group_id=_group_id(content))


def group_rename(caller: Caller, content: dict) -> tuple[int, Any]:
    name = _group_name(content)
    groups.group_rename(caller=caller, group_id=_group_id(content), name=name)
    return Code.OK, {"group_id": _group_id(content), "name": name}


def group_set_role(caller: Caller, content: dict) -> tuple[int, Any]:
    uid = read_int(content, "uid", required=True, minimum=1)
    role = read_str(content, "role", required=True)
    groups.group_set_role(caller=caller, group_id=_group_id(content), uid=uid, role=role)
    return Code.OK, {"group_id": _group_id(content), "uid": uid, "role": role}


def group_mute(caller: Caller, content: dict) -> tuple[int, Any]:
    uid = read_int(content, "uid", required=True, minimum=1)
    muted = read_bool(content, "muted", default=True)
    groups.group_mute(caller=caller, group_id=_group_id(content), uid=uid, muted=muted)
    return Code.OK, {"group_id": _group_id(content), "uid": uid, "muted": muted}


def group_dissolve(caller: Caller, content: dict) -> tuple[int, Any]:
    groups.group_dissolve(caller=caller, group_id=_group_id(content))
    return Code.OK, {"group_id": _group_id(content)}


HANDLERS: dict[tuple[str, str], Handler] = {
    ("chat", "sendmsg"): send_msg,
    ("chat", "setchatread"): set_chat_read,
    ("chat", "delchat"): del_chat,
    ("chat", "typing"): typing,
    ("chat", "sync"): sync,
    ("chat", "recall"): recall,
    ("user", "recentchat"): recent_chat,
    ("user", "friendlist"): friend_list,
    ("user", "chatrecord"): chat_record,
    ("group", "create"): group_create,
    ("group", "invite"): group_invite,
    ("group", "leave"): group_leave,
    ("group", "kick"): group_kick,
    ("group", "members"): group_members,
    ("group", "rename"): group_rename,
    ("group", "setrole"): group_set_role,
    ("group", "mute"): group_mute,
    ("group", "dissolve"): group_dissolve,
    **service_handlers.HANDLERS,
    **desk_handlers.HANDLERS,
}
# The `kind` label of imchat_frames: a known command's class.action (anything else counts as unknown).
FRAME_KINDS = {key: ".".join(key) for key in HANDLERS}


# Everything a new socket needs from the database, in one statement (chat/sockets.py).
SOCKET_OPEN_SQL = sockets.open_statement([*sockets.CHAT_ITEMS, *service_sockets.ITEMS])


def socket_opened(*, user_id: int, claims: dict | None, base_url: str, channel_name: str) -> sockets.Opening:
    """Who a new socket is, the groups it joins (the shops' agent groups too), presence; -200, -429."""
    user, items = sockets.socket_read(SOCKET_OPEN_SQL, user_id=user_id, claims=claims)
    caller = Caller(user=user, base_url=base_url, channel_name=channel_name)
    groups = sockets.socket_opened(caller, items) + service_sockets.agent_groups(items)
    online_shop_ids = service_sockets.online_shop_ids(items)
    after_join = partial(socket_joined, caller, online_shop_ids) if online_shop_ids else None
    return sockets.Opening(caller, groups, after_join)


def socket_joined(caller: Caller, online_shop_ids: list[int]) -> list[realtime.Push]:
    """Once an online agent's socket is in its groups: their shops' queues may move."""
    with realtime.collecting() as pushes:
        service_sockets.agent_connected(online_shop_ids, caller.base_url)
    return pushes


def socket_closed(caller: Caller) -> None:
    sockets.socket_closed(caller)


def close_idle_sessions() -> None:
    service_services.sessions_close_idle(base_url=default_base_url())


# (interval in seconds, job): run by every server process while it serves sockets.
BACKGROUND_JOBS = [
    (settings.IM_ACCOUNT_CHECK_SECONDS, sockets.sockets_close_of_inactive_users),
    (30.0, close_idle_sessions),
    (float(settings.IM_WEBHOOK_POLL_SECONDS), service_webhooks.deliver_in_background),
]


def run(caller: Caller, envelope: Envelope) -> tuple[dict, list[realtime.Push]]:
    """One request: the reply frame, and the pushes its committed writes produced."""
    with realtime.collecting() as pushes:
        try:
            handler = HANDLERS.get(envelope.key)
            if handler is None:
                raise bad_request(f"unknown action {envelope.cls}.{envelope.action}")
            code, result = handler(caller, envelope.content)
            frame = reply(code, result, None, envelope.req_id)
        except AppError as error:
            frame = error_reply(error, envelope)
    return frame, pushes


# Requests worth storing together when many arrive at once (see chat/dispatch.py).
BATCHED = {("chat", "sendmsg")}


def run_batch(requests: list[tuple[Caller, Envelope]]) -> tuple[list[dict], list[realtime.Push]]:
    """Many chat.sendmsg requests: the reply frames, in order, and the pushes of all of them."""
    frames: list[dict | None] = [None] * len(requests)
    parsed = []
    for index, (caller, envelope) in enumerate(requests):
        try:
            parsed.append((index, caller, read_send(envelope.content)))
        except AppError as error:
            frames[index] = error_reply(error, envelope)
    with realtime.collecting() as pushes:
        outcomes = sending.send_many([(caller, send) for _, caller, send in parsed])
    for (index, _, _), outcome in zip(parsed, outcomes):
        envelope = requests[index][1]
        if isinstance(outcome, AppError):
            frames[index] = error_reply(outcome, envelope)
        else:
            frames[index] = reply(Code.OK, outcome.as_reply(), None, envelope.req_id)
    return frames, pushes


def run_safely(caller: Caller, envelope: Envelope) -> tuple[dict, list[realtime.Push]]:
    """`run`, with an unexpected failure answered as a server fault (and logged) instead of raised."""
    try:
        return run(caller, envelope)
    except Exception as error:
        outages.report(logger, error, "%s.%s failed for user %s", envelope.cls, envelope.action, caller.uid)
        return error_reply(sending.SERVER_FAULT, envelope), []


def call(caller: Caller, key: tuple[str, str], content: dict) -> Any:
    """Run one handler outside a socket (HTTP compat); pushes go out on commit."""
    code, result = HANDLERS[key](caller, content)
    return result
