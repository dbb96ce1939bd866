"""customer_service's slice of the (class, action) table: agents' own actions."""

from typing import Any

from django.utils import timezone

from chat.inputs import read_chat_id
from chat.protocol import Caller, read_int, read_str
from customer_service import ratings, selectors, services
from customer_service import search as desk_search
from customer_service.models import ServiceAgent
from imchat.errors import Code, bad_request


def set_status(caller: Caller, content: dict) -> tuple[int, Any]:
    status = read_str(content, "status", required=True)
    if status not in ServiceAgent.Status.values:
        raise bad_request("status: one of online, busy, offline")
    agents = services.agent_set_status(
        user=caller.user, status=status, shop_id=read_int(content, "shop_id") or None,
        exclude_channel=caller.channel_name, base_url=caller.base_url,
    )
    return Code.OK, {"status": status, "shop_ids": [agent.shop_id for agent in agents]}


def transfer(caller: Caller, content: dict) -> tuple[int, Any]:
    chat_id = read_chat_id(content)
    shop_id = selectors.shop_side_of(caller.user, chat_id)
    to_uid = read_int(content, "to_uid", required=True, minimum=1)
    session = services.session_transfer(
        caller=caller, shop_id=shop_id, chat_id=chat_id, to_uid=to_uid, base_url=caller.base_url
    )
    return Code.OK, {"chat_id": chat_id, "agent_uid": session.agent_id}


def close(caller: Caller, content: dict) -> tuple[int, Any]:
    chat_id = read_chat_id(content)
    selectors.shop_side_of(caller.user, chat_id)
    services.session_close_by_agent(caller=caller, chat_id=chat_id, base_url=caller.base_url)
    return Code.OK, {"chat_id": chat_id}


def rate(caller: Caller, content: dict) -> tuple[int, Any]:
    """The consumer rates their closed session (CSAT): reply with what was stored."""
    score = ratings.read_score(content)
    comment = ratings.read_comment(content)
    session_id, chat_id = ratings.read_session_ref(content)
    session = ratings.session_rate(consumer=caller.user, score=score, comment=comment, session_id=session_id,
                                   chat_id=chat_id, exclude_channel=caller.channel_name)
    return Code.OK, ratings.rating_event(session)


def shop_info(caller: Caller, content: dict) -> tuple[int, Any]:
    """Any user: a shop's name, logo and business hours (open now, next opening, weekly schedule)."""
    shop_id = read_int(content, "shop_id", required=True, minimum=1)
    return Code.OK, selectors.shop_info(shop_id, base_url=caller.base_url, now=timezone.now())


def search(caller: Caller, content: dict) -> tuple[int, Any]:
    """The desk's search (customer_service/search.py): the same result as GET /api/v1/search/messages/."""
    return Code.OK, desk_search.conversations_search(
        user=caller.user, q=read_str(content, "q", required=True), shop_id=read_int(content, "shop_id") or None,
        page=read_int(content, "page", default=1, minimum=1),
        page_size=read_int(content, "page_size", default=desk_search.PAGE_SIZE_DEFAULT, minimum=1),
        base_url=caller.base_url,
    )


HANDLERS = {
    ("service", "setstatus"): set_status,
    ("service", "transfer"): transfer,
    ("service", "close"): close,
    ("service", "rate"): rate,
    ("service", "shopinfo"): shop_info,
    ("service", "search"): search,
}
