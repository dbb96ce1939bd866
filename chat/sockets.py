"""What opening and closing a socket means: who it is, what it reads, presence, the groups it joins."""

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import NamedTuple

import psycopg
from django.conf import settings
from django.db import connection, connections

from accounts.models import User
from accounts.services import user_create_from_claims
from accounts.tokens import InvalidToken
from chat import ids, realtime
from chat.models import ChatType, Conversation, Participant
from chat.notices import EVERYONE, announcements_box_join
from chat.presence import presence
from chat.protocol import Caller
from imchat.errors import AppError, Code

# What a socket needs besides its user comes as items, one row (kind, ref, state) each, from SELECTs
# of `user_id`: its chat groups, and the announcements box while it has messages but no read
# marker of theirs (state: its last seq). customer_service/sockets.py adds the shops served.
CHAT_ITEMS = (
    f"""SELECT 'group' AS kind, c.group_id AS ref, 0 AS state
    FROM {Participant._meta.db_table} p JOIN {Conversation._meta.db_table} c ON c.id = p.conversation_id
    WHERE p.user_id = %(user_id)s AND p.left_seq IS NULL AND c.chat_type = {int(ChatType.GROUP)}""",
    f"""SELECT 'box' AS kind, c.id AS ref, c.last_seq AS state FROM {Conversation._meta.db_table} c
    WHERE c.chat_id = '{ids.system_chat_id(EVERYONE)}' AND c.last_seq > 0 AND NOT EXISTS (
        SELECT 1 FROM {Participant._meta.db_table} p WHERE p.conversation_id = c.id AND p.user_id = %(user_id)s)""",
)

_USER_FIELDS = User._meta.concrete_fields
_USER_ATTNAMES = [field.attname for field in _USER_FIELDS]

Items = dict[str, list[tuple[int, int]]]


class Opening(NamedTuple):
    """A new socket, once its database call is done."""

    caller: Caller
    groups: list[str]  # every channel-layer group the socket joins before its handshake completes
    after_join: Callable[[], list[realtime.Push]] | None  # database work once it has joined, if any


def open_statement(items: Sequence[str]) -> str:
    """One statement: the active user's row beside each of its items (alone if it has none)."""
    columns = ", ".join(f'u."{field.column}"' for field in _USER_FIELDS)
    return (f"SELECT {columns}, i.kind, i.ref, i.state FROM {User._meta.db_table} u\n"
            f"LEFT JOIN ({' UNION ALL '.join(items)}) i ON 1 = 1\n"
            f"WHERE u.id = %(user_id)s AND u.is_active")


def socket_read(statement: str, *, user_id: int, claims: dict | None) -> tuple[User, Items]:
    """The active user and their items; no such user: one made from the token's claims when
    IM_JWT_AUTO_CREATE allows, else -200."""
    rows = _rows(statement, user_id)
    if not rows and claims is not None:
        try:
            user_create_from_claims(claims)
        except InvalidToken as error:
            raise AppError(Code.NOT_LOGGED_IN, str(error)) from None
        rows = _rows(statement, user_id)
    if not rows:
        raise AppError(Code.NOT_LOGGED_IN, "user does not exist")
    items: Items = {}
    for row in rows:
        kind, ref, state = row[len(_USER_FIELDS):]
        if kind is not None:
            items.setdefault(kind, []).append((ref, state))
    return _user(rows[0][:len(_USER_FIELDS)]), items


def _rows(statement: str, user_id: int) -> list[tuple]:
    with _cursor() as cursor:
        cursor.execute(statement, {"user_id": user_id})
        return cursor.fetchall()


def _cursor():
    """On PostgreSQL one with server-side parameters, so psycopg prepares the statement once per
    connection (settings: DB_PREPARED_STATEMENTS); Django's own cursors bind client-side."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.ensure_connection()
    cursor = psycopg.Cursor(connection.connection)
    return connection.make_debug_cursor(cursor) if connection.queries_logged else connection.make_cursor(cursor)


def _user(values: tuple) -> User:
    """The User of its columns, converted as the ORM would (SQLite gives booleans and dates raw)."""
    compiler, converters = _user_converters(connections[connection.alias])
    if converters:
        [values] = compiler.apply_converters([values], converters)
    return User.from_db(connection.alias, _USER_ATTNAMES, values)


@lru_cache(maxsize=16)
def _user_converters(database) -> tuple:
    """Per database connection (one per thread): working them out costs more than the rest of _user."""
    compiler = User.objects.none().query.get_compiler(connection=database)
    return compiler, compiler.get_converters([field.get_col(User._meta.db_table) for field in _USER_FIELDS])


def socket_opened(caller: Caller, items: Items) -> list[str]:
    """The chat groups the socket joins; presence (last: nothing to undo after). Too many sockets
    for one user: -429."""
    for box_id, _ in items.get("box", ()):
        announcements_box_join(caller.user, box_id)
    groups = [realtime.user_group(caller.uid), realtime.everyone_group(),
              *(realtime.chat_group(group_id) for group_id, _ in items.get("group", ()))]
    if presence().connected(caller.uid, caller.channel_name) > settings.IM_MAX_SOCKETS_PER_USER:
        presence().disconnected(caller.uid, caller.channel_name)
        raise AppError(Code.RATE_LIMITED, f"at most {settings.IM_MAX_SOCKETS_PER_USER} connections per user")
    return groups


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
