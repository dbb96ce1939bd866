"""What opening and closing a socket means: presence, and the channel-layer groups it joins."""

from django.conf import settings

from accounts.models import User
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


ACCOUNT_CLOSED = "account deactivated"


def sockets_close_of_inactive_users() -> list[int]:
    """Log out this process's sockets of users deactivated or deleted since they connected, by
    whatever path (admin, mall, shell, SQL): a socket is authenticated once, at its handshake."""
    local = presence().local_user_ids()
    if not local:
        return []
    active = set(User.objects.filter(pk__in=local, is_active=True).values_list("pk", flat=True))
    gone = sorted(local - active)
    realtime.logout_on_commit(gone, ACCOUNT_CLOSED)
    return gone
