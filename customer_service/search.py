"""Searching a shop's customer-service conversations: by message text, customer name or order id.

Only the caller's shops (as an agent or the owner), only customer-service messages (chat_type 4),
never recalled ones, never images. On PostgreSQL `ILIKE '%term%'` (Django's `icontains`, which
escapes `%`, `_` and `\\`) is served by pg_trgm GIN indexes on `UPPER(msg)` and on the users'
names (migrations chat 0003 / accounts 0002). A term without three letters or digits in a row has no
trigram to look up: it is matched within the shops' newest IM_SEARCH_SHORT_WINDOW messages, found
through the (shop_id, created_at) index, so its cost is bounded (docs/PERFORMANCE.md). On SQLite
(the embedded development database, for development only) the same queries are plain scans.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import DateTimeField, Q, Subquery, Value
from django.db.models.functions import Coalesce

from accounts.models import User
from chat import ids
from chat.models import ChatType, Message, MsgType, Participant
from chat.payloads import unix
from customer_service.selectors import served_shop_ids
from imchat.errors import bad_request, forbidden, rate_limited
from imchat.links import absolute_url
from imchat.sql import bounded
from imchat.throttling import PerUser

QUERY_MAX_CHARS = 100
PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 50
PAGE_MAX = 50  # deepest offset: PAGE_MAX x PAGE_SIZE_MAX hits
CUSTOMERS_MAX = 10
SNIPPET_BEFORE = 30  # characters of context before the first match
SNIPPET_CHARS = 120
ELLIPSIS = "…"
ORDER_PREFIX = re.compile(r"^order:\s*", re.IGNORECASE)
ORDER_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ORDER_ID_CHARS = "A-Za-z0-9._-"
# pg_trgm makes trigrams of runs of letters and digits; a term without a run of three has none.
INDEXABLE_RUN = re.compile(r"[^\W_]{3}")
ASCII_RUN = re.compile(r"[0-9A-Za-z]{3}")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


class SearchThrottle(PerUser):
    """Searches per user, over HTTP and the socket alike (IM_SEARCH_RATE)."""

    scope = "search"


@dataclass(frozen=True)
class SearchQuery:
    text: str  # what the message must contain (case-insensitively)
    order_id: str | None = None  # `order:<id>`: the id as a whole token, not inside a longer one

    @property
    def normalized(self) -> str:
        return f"order:{self.order_id}" if self.order_id is not None else self.text


def search_query_parse(raw: Any) -> SearchQuery:
    """`q` trimmed and checked (1..100 characters), or `order:<id>`; code 0 naming `q` otherwise."""
    if raw is None or raw == "":
        raise bad_request("q: required")
    if not isinstance(raw, str):
        raise bad_request("q: must be a string")
    if "\x00" in raw:
        raise bad_request("q: must not contain NUL characters")
    text = " ".join(raw.split())  # trimmed, inner runs of white space as one space
    if not text:
        raise bad_request("q: required")
    if len(text) > QUERY_MAX_CHARS:
        raise bad_request(f"q: at most {QUERY_MAX_CHARS} characters")
    prefix = ORDER_PREFIX.match(text)
    if prefix:
        order_id = text[prefix.end():]
        if not ORDER_ID.match(order_id):
            raise bad_request("q: order:<id> takes letters, digits, '.', '_' and '-' (1 to 64)")
        return SearchQuery(text=order_id, order_id=order_id)
    return SearchQuery(text=text)


def search_shop_ids(user: User, shop_id: int | None) -> list[int]:
    """The shops to search: all the caller serves, or the one asked for; -403 for anything else."""
    shop_ids = served_shop_ids(user)
    if not shop_ids:
        raise forbidden("not a service agent")
    if shop_id is not None:
        if shop_id not in shop_ids:
            raise forbidden("not an agent of this shop")
        return [shop_id]
    return shop_ids


def search_allowed_or_raise(user: User) -> None:
    """-429 past IM_SEARCH_RATE: one count per user for the socket and HTTP together (in the cache,
    as DRF's throttles count)."""
    throttle = SearchThrottle()
    if not throttle.allow_request(SimpleNamespace(user=user), None):
        raise rate_limited(throttle.wait() or 1, "too many searches")


@cache
def _indexes_non_ascii(vendor: str, alias: str) -> bool:
    """Whether pg_trgm makes trigrams of CJK (any non-ASCII) words in this database: it does under a
    UTF-8 locale (C.UTF-8, en_US.UTF-8), and drops them under the plain C locale."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT cardinality(show_trgm('退款单'))")
            return cursor.fetchone()[0] > 0
    except DatabaseError:  # no pg_trgm: every term takes the bounded path
        return False


def indexable(term: str) -> bool:
    """Whether the trigram index can narrow a search for `term` (else the bounded recent scan)."""
    if INDEXABLE_RUN.search(term) is None:
        return False
    if connection.vendor != "postgresql" or ASCII_RUN.search(term):
        return True
    return _indexes_non_ascii(connection.vendor, connection.alias)


def _matching_messages(shop_ids: list[int], query: SearchQuery):
    scoped = Message.objects.filter(chat_type=ChatType.SERVICE, shop_id__in=shop_ids)
    found = scoped.filter(recalled_at__isnull=True, msg__icontains=query.text).exclude(msg_type=MsgType.IMAGE)
    if query.order_id is not None:
        # The id as a whole token: `2024-001` finds "[Order 2024-001]", not "2024-0012".
        token = re.escape(query.order_id)
        found = found.filter(msg__iregex=rf"(^|[^{ORDER_ID_CHARS}]){token}($|[^{ORDER_ID_CHARS}])")
    if not indexable(query.text):
        # The window's oldest moment, read once (an InitPlan) down the (shop_id, created_at) index;
        # the match is then looked for only among messages at least that recent.
        oldest = scoped.order_by("-created_at").values("created_at")[
            settings.IM_SEARCH_SHORT_WINDOW - 1: settings.IM_SEARCH_SHORT_WINDOW]
        since = Coalesce(Subquery(oldest), Value(EARLIEST, output_field=DateTimeField()))
        found = found.filter(created_at__gte=since)
    return found


def message_page(shop_ids: list[int], query: SearchQuery, *, offset: int, page_size: int):
    """One page of message hits, newest first, plus one row to tell whether more follow."""
    return (
        _matching_messages(shop_ids, query)
        .select_related("conversation")
        .order_by("-created_at", "-id")
        .only("id", "seq", "msg", "msg_type", "sender_id", "sent_as", "created_at", "shop_id",
              "conversation__chat_id")[offset: offset + page_size + 1]
    )


def customer_page(shop_ids: list[int], term: str):
    """Conversations of these shops whose customer's name (nickname or username) contains `term`."""
    return _matching_customers(shop_ids, term)[:CUSTOMERS_MAX]


def _matching_customers(shop_ids: list[int], term: str):
    name = Q(peer_user__nickname__icontains=term) | Q(peer_user__username__icontains=term)
    return (
        Participant.objects.filter(user__isnull=True, shop_id__in=shop_ids,
                                   conversation__chat_type=ChatType.SERVICE)
        .filter(name)
        .select_related("peer_user", "conversation")
        .order_by("-conversation__last_time", "-id")
    )


def snippet(text: str, term: str) -> tuple[str, list[list[int]]]:
    """A short piece of `text` around the first match of `term`, and where `term` occurs in it as
    [start, end) offsets in Unicode code points (the client marks them; nothing here is HTML)."""
    pattern = re.compile(re.escape(term), re.IGNORECASE)
    text = " ".join(text.split())
    first = pattern.search(text)
    start = max(0, first.start() - SNIPPET_BEFORE) if first else 0
    piece = text[start: start + SNIPPET_CHARS]
    prefix = ELLIPSIS if start > 0 else ""
    suffix = ELLIPSIS if start + SNIPPET_CHARS < len(text) else ""
    piece = prefix + piece + suffix
    marks = [[match.start(), match.end()] for match in pattern.finditer(piece)]
    return piece, marks


def _run_bounded(work):
    """`work()` under IM_SEARCH_TIMEOUT_MS on PostgreSQL: a search too broad to finish is code 0."""
    return bounded(work, timeout_ms=settings.IM_SEARCH_TIMEOUT_MS,
                   refusal=lambda: bad_request("q: matches too much to search in time; add words"))


def conversations_search(*, user: User, q: Any, shop_id: int | None = None, page: int = 1,
                         page_size: int = PAGE_SIZE_DEFAULT, base_url: str) -> dict[str, Any]:
    """A page of message hits, newest first (and, on page 1, the customers whose name matches)."""
    query = search_query_parse(q)
    if not 1 <= page <= PAGE_MAX:
        raise bad_request(f"page: 1 to {PAGE_MAX}")
    if not 1 <= page_size <= PAGE_SIZE_MAX:
        raise bad_request(f"page_size: 1 to {PAGE_SIZE_MAX}")
    shop_ids = search_shop_ids(user, shop_id)
    search_allowed_or_raise(user)
    offset = (page - 1) * page_size

    def work():
        rows = list(message_page(shop_ids, query, offset=offset, page_size=page_size))
        customers = []
        if page == 1 and query.order_id is None:
            customers = list(customer_page(shop_ids, query.text))
        return rows, customers

    rows, customers = _run_bounded(work)
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    consumer_ids = {ids.parse_chat_id(row.conversation.chat_id).b for row in rows}
    consumers = {user.pk: user for user in User.objects.filter(pk__in=consumer_ids).only(
        "id", "username", "nickname", "avatar")}
    hits = []
    for row in rows:
        consumer_id = ids.parse_chat_id(row.conversation.chat_id).b
        consumer = consumers.get(consumer_id)
        text, marks = snippet(row.msg, query.text)
        hits.append({
            "chat_id": row.conversation.chat_id,
            "shop_id": row.shop_id,
            "uid": consumer_id,
            "name": consumer.display_name if consumer else "",
            "avatar": absolute_url(consumer.avatar, base_url) if consumer else "",
            "msg_id": row.pk,
            "seq": row.seq,
            "from_uid": row.sender_id or 0,
            "from_customer": row.sender_id == consumer_id,
            "msg_type": row.msg_type,
            "snippet": text,
            "marks": marks,
            "createtime": unix(row.created_at),
        })
    return {
        "q": query.normalized,
        "order_id": query.order_id,
        "shop_ids": shop_ids,
        "page": page,
        "page_size": page_size,
        "has_more": has_more,
        "recent_only": not indexable(query.text),
        "hits": hits,
        "customers": [{
            "chat_id": participant.conversation.chat_id,
            "shop_id": participant.shop_id,
            "uid": participant.peer_user_id,
            "name": participant.peer_user.display_name,
            "username": participant.peer_user.username,
            "avatar": absolute_url(participant.peer_user.avatar, base_url),
            "last_msg": participant.conversation.last_msg,
            "last_msg_type": participant.conversation.last_msg_type,
            "last_time": unix(participant.conversation.last_time),
        } for participant in customers],
    }
