"""Customer-service sessions over HTTP: list a shop's, read one with its assignments, transfer it,
close it. For the shop's owner, its agents, superusers and the mall's key (any shop).

Transfer and close are `service.transfer` / `service.close` (PROTOCOL.md section 5): the same
services, rules, errors and 305 pushes. The mall acts as nobody in particular: uid 0 in the
assignment's detail and the webhooks' `by_uid`, `closed_by: "mall"`.
"""

from datetime import UTC, datetime
from typing import Any

from django.db.models import Prefetch, QuerySet
from rest_framework import serializers
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts.mall import MallClient, MallKeyIfGiven
from chat.payloads import unix
from customer_service import desk, services
from customer_service.apis import served_shop
from customer_service.desk_apis import LAST_UNIX_DAY, LabelOut
from customer_service.models import Assignment, ServiceSession, Shop, ShopLabel
from imchat.api import caller_of, ok
from imchat.errors import bad_request, not_found
from imchat.inputs import QueryIntegerField, body_of, validated
from imchat.openapi import INT64_MAX, api

State = ServiceSession.State
PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 100
PAGE_MAX = 10000


# --- Who may: the shop side, superusers, the mall -----------------------------------------------


def _is_mall(request) -> bool:
    return isinstance(request.user, MallClient)


def shop_for_sessions(request, shop_id: int) -> Shop:
    """The shop, for its agents, its owner, superusers and the mall (-404 / -403)."""
    if not _is_mall(request):
        return served_shop(request, shop_id)
    shop = Shop.objects.filter(pk=shop_id).first()
    if shop is None:
        raise not_found("shop_id: no such shop")
    return shop


def session_for(request, session_id: int) -> ServiceSession:
    """A session by id, for its shop's side, superusers and the mall (-404 unknown, -403 another shop's)."""
    if not _is_mall(request):
        return desk.session_for_shop_side(request.user, session_id)
    session = ServiceSession.objects.filter(pk=session_id).select_related("conversation").first()
    if session is None:
        raise not_found("session_id: no such session")
    return session


# --- Reads ----------------------------------------------------------------------------------------


def _sessions(shop_id: int) -> QuerySet[ServiceSession]:
    return (
        ServiceSession.objects.filter(shop_id=shop_id)
        .select_related("conversation", "consumer", "agent")
        .prefetch_related(Prefetch("labels", queryset=ShopLabel.objects.order_by("name", "pk")))
    )


def session_row(session: ServiceSession) -> dict[str, Any]:
    return {
        "session_id": session.pk, "shop_id": session.shop_id, "chat_id": session.conversation.chat_id,
        "state": session.state,
        "consumer_uid": session.consumer_id, "consumer_name": session.consumer.display_name,
        "agent_uid": session.agent_id or 0, "agent_name": session.agent.display_name if session.agent else "",
        "created_at": unix(session.created_at), "queued_at": unix(session.queued_at),
        "assigned_at": unix(session.assigned_at), "first_response_at": unix(session.first_response_at),
        "closed_at": unix(session.closed_at), "last_activity_at": unix(session.last_activity_at),
        "rating": session.rating, "rating_comment": session.rating_comment, "rated_at": unix(session.rated_at),
        "labels": [desk.label_row(label) for label in session.labels.all()],
    }


def session_detail(session_id: int, shop_id: int) -> dict[str, Any]:
    session = _sessions(shop_id).prefetch_related(
        Prefetch("assignments", queryset=Assignment.objects.select_related("agent").order_by("created_at", "pk"))
    ).get(pk=session_id)
    return {**session_row(session), "assignments": [
        {"agent_uid": row.agent_id, "agent_name": row.agent.display_name, "reason": row.reason,
         "detail": row.detail, "created_at": unix(row.created_at)}
        for row in session.assignments.all()
    ]}


def sessions_page(*, shop_id: int, state: str | None, agent_uid: int | None, label_id: int | None,
                  since: datetime | None, until: datetime | None, page: int, page_size: int) -> dict[str, Any]:
    """A shop's sessions, newest first (created_at, then id: a stable order), with the filters."""
    sessions = _sessions(shop_id)
    if state:
        sessions = sessions.filter(state=state)
    if agent_uid:
        sessions = sessions.filter(agent_id=agent_uid)
    if label_id:
        sessions = sessions.filter(labels=label_id)
    if since:
        sessions = sessions.filter(created_at__gte=since)
    if until:
        sessions = sessions.filter(created_at__lt=until)
    start = (page - 1) * page_size
    rows = list(sessions.order_by("-created_at", "-pk")[start:start + page_size + 1])
    return {"page": page, "page_size": page_size, "has_more": len(rows) > page_size,
            "rows": [session_row(session) for session in rows[:page_size]]}


# --- Serializers ----------------------------------------------------------------------------------


class SessionOut(serializers.Serializer):
    session_id = serializers.IntegerField()
    shop_id = serializers.IntegerField()
    chat_id = serializers.CharField()
    state = serializers.ChoiceField(choices=State.values)
    consumer_uid = serializers.IntegerField()
    consumer_name = serializers.CharField()
    agent_uid = serializers.IntegerField(help_text="the session's agent; 0 none (queued)")
    agent_name = serializers.CharField(allow_blank=True)
    created_at = serializers.IntegerField(help_text="unix seconds")
    queued_at = serializers.IntegerField(help_text="unix seconds; 0 never")
    assigned_at = serializers.IntegerField(help_text="unix seconds of the last assignment; 0 never")
    first_response_at = serializers.IntegerField(help_text="unix seconds; 0 not answered yet")
    closed_at = serializers.IntegerField(help_text="unix seconds; 0 not closed")
    last_activity_at = serializers.IntegerField(help_text="unix seconds")
    rating = serializers.IntegerField(allow_null=True, help_text="1..5; null not rated")
    rating_comment = serializers.CharField(allow_blank=True)
    rated_at = serializers.IntegerField(help_text="unix seconds; 0 not rated")
    labels = LabelOut(many=True)


class AssignmentOut(serializers.Serializer):
    agent_uid = serializers.IntegerField()
    agent_name = serializers.CharField()
    reason = serializers.ChoiceField(choices=Assignment.Reason.values)
    detail = serializers.CharField(allow_blank=True)
    created_at = serializers.IntegerField(help_text="unix seconds")


class SessionDetailOut(SessionOut):
    assignments = AssignmentOut(many=True, help_text="oldest first: why the session reached each agent")


class SessionPageOut(serializers.Serializer):
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    has_more = serializers.BooleanField(help_text="a next page exists")
    rows = SessionOut(many=True, help_text="newest first (created_at, then session_id)")


# --- Endpoints ------------------------------------------------------------------------------------


class SessionApiView(APIView):
    """A user's JWT or session, or the mall's key (then unthrottled: one trusted backend)."""

    authentication_classes = [MallKeyIfGiven, *api_settings.DEFAULT_AUTHENTICATION_CLASSES]

    def get_throttles(self):
        return [] if _is_mall(self.request) else super().get_throttles()


class ShopSessionListApi(SessionApiView):
    """A shop's sessions, newest first, filtered (the shop's agents and owner, superusers, the mall)."""

    class SessionFilterSerializer(serializers.Serializer):
        state = serializers.ChoiceField(choices=State.values, required=False)
        agent = QueryIntegerField(required=False, min_value=1, max_value=INT64_MAX, help_text="the agent's uid")
        label = QueryIntegerField(required=False, min_value=1, max_value=INT64_MAX, help_text="a label id of the shop")
        since = QueryIntegerField(required=False, min_value=0, max_value=LAST_UNIX_DAY,
                                  help_text="unix seconds: sessions created at or after")
        until = QueryIntegerField(required=False, min_value=0, max_value=LAST_UNIX_DAY,
                                  help_text="unix seconds: sessions created before")
        page = QueryIntegerField(default=1, min_value=1, max_value=PAGE_MAX)
        page_size = QueryIntegerField(default=PAGE_SIZE_DEFAULT, min_value=1, max_value=PAGE_SIZE_MAX)

    @api(name="ShopSessionList", result=SessionPageOut, parameters=[SessionFilterSerializer], tags=["sessions"])
    def get(self, request, shop_id: int):
        shop = shop_for_sessions(request, shop_id)
        query = validated(self.SessionFilterSerializer, request.query_params)
        since = datetime.fromtimestamp(query["since"], UTC) if "since" in query else None
        until = datetime.fromtimestamp(query["until"], UTC) if "until" in query else None
        if since and until and since >= until:
            raise bad_request("since: must be before until")
        return ok(sessions_page(shop_id=shop.pk, state=query.get("state"), agent_uid=query.get("agent"),
                                label_id=query.get("label"), since=since, until=until, page=query["page"],
                                page_size=query["page_size"]))


class SessionApi(SessionApiView):
    """One session with its labels and assignments."""

    @api(name="SessionGet", result=SessionDetailOut, tags=["sessions"])
    def get(self, request, session_id: int):
        session = session_for(request, session_id)
        return ok(session_detail(session.pk, session.shop_id))


class SessionTransferApi(SessionApiView):
    """Hand a live session to another online agent of its shop (as service.transfer)."""

    class TransferInputSerializer(serializers.Serializer):
        to_uid = serializers.IntegerField(min_value=1, max_value=INT64_MAX, help_text="an online agent of the shop")

    @api(name="SessionTransfer", result=SessionDetailOut, request=TransferInputSerializer, tags=["sessions"])
    def post(self, request, session_id: int):
        session = session_for(request, session_id)
        data = validated(self.TransferInputSerializer, body_of(request))
        caller = caller_of(request)
        services.session_transfer(caller=caller, shop_id=session.shop_id, chat_id=session.conversation.chat_id,
                                  to_uid=data["to_uid"], base_url=caller.base_url, session_id=session.pk)
        return ok(session_detail(session.pk, session.shop_id))


class SessionCloseApi(SessionApiView):
    """End a live session (as service.close): the consumer may rate it, the queue moves."""

    @api(name="SessionClose", result=SessionDetailOut, tags=["sessions"])
    def post(self, request, session_id: int):
        session = session_for(request, session_id)
        caller = caller_of(request)
        services.session_close_by_agent(caller=caller, chat_id=session.conversation.chat_id,
                                        base_url=caller.base_url, session_id=session.pk)
        return ok(session_detail(session.pk, session.shop_id))
