"""What opening and closing a socket means: presence, and the channel-layer groups it joins."""

from django.conf import settings

from chat import realtime
from chat.groups import group_ids_of
from chat.notices import announcements_box_ensure
from chat.presence import presence
from chat.protocol import Caller
from imchat.errors import AppError, Code


def socket_opened(caller: Caller) -> list[str]:
    """Record presence; the groups this socket must join. Too many sockets for one user: -429."""
    if presence().connected(caller.uid, caller.channel_name) > settings.IM_MAX_SOCKETS_PER_USER:
        presence().disconnected(caller.uid, caller.channel_name)
        raise AppError(Code.RATE_LIMITED, f"at most {settings.IM_MAX_SOCKETS_PER_USER} connections per user")
    try:
        announcements_box_ensure(caller.user)
        chat_groups = [realtime.chat_group(gid) for gid in group_ids_of(caller.uid)]
    except Exception:
        presence().disconnected(caller.uid, caller.channel_name)
        raise
    return [realtime.user_group(caller.uid), realtime.everyone_group(), *chat_groups]


def socket_closed(caller: Caller) -> None:
    presence().disconnected(caller.uid, caller.channel_name)
