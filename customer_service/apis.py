"""Customer service over HTTP: the merchant's shops and agents, system notices, the mall's shop sync."""

from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Count
from django.utils import timezone
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.views import APIView

from accounts import mall
from chat.models import Notice
from chat.payloads import unix
from customer_service import guard, offline, ratings, search, selectors, services
from customer_service.mall import shops_upsert
from customer_service.hours import MAX_CLOSED_DAYS, MAX_INTERVALS, Hours, Interval, hours_payload
from customer_service.models import MAX_OFFLINE_NOTIFY_MINUTES, ServiceAgent, ServiceSession, Shop, ShopClosedDay
from customer_service.notices import notice_send_to
from customer_service.selectors import agent_available, agents_with_state, shop_hours
from imchat.api import caller_of, ok
from imchat.errors import bad_request, forbidden, not_found
from imchat.inputs import QueryIntegerField, body_of, validated
from imchat.links import absolute_url, base_url_from_request
from imchat.openapi import INT64_MAX, api

State = ServiceSession.State
Status = ServiceAgent.Status
MALL_BATCH = 1000


def owned_shop(request, shop_id: int) -> Shop:
    """The shop, if the caller owns it (or is a superuser): -404 / -403 otherwise."""
    shop = Shop.objects.filter(pk=shop_id).first()
    if shop is None:
        raise not_found("shop_id: no such shop")
    if shop.owner_id != request.user.pk and not request.user.is_superuser:
        raise forbidden("not the owner of this shop")
    return shop


def served_shop(request, shop_id: int) -> Shop:
    """The shop, if the caller is one of its agents or its owner (or a superuser): -404 / -403 otherwise."""
    shop = Shop.objects.filter(pk=shop_id).first()
    if shop is None:
        raise not_found("shop_id: no such shop")
    if not request.user.is_superuser and not selectors.can_serve(request.user.pk, shop.pk):
        raise forbidden("not an agent of this shop")
    return shop


def _session_counts(shop_ids: list[int]) -> dict[int, dict[str, int]]:
    rows = (
        ServiceSession.objects.filter(shop_id__in=shop_ids, state__in=[State.OPEN, State.QUEUED])
        .values("shop_id", "state").annotate(n=Count("id"))
    )
    counts: dict[int, dict[str, int]] = {shop_id: {State.OPEN: 0, State.QUEUED: 0} for shop_id in shop_ids}
    for row in rows:
        counts[row["shop_id"]][row["state"]] = row["n"]
    return counts


def _agent_rows(shop: Shop, base_url: str, only_uid: int | None = None) -> list[dict]:
    agents = ServiceAgent.objects.filter(shop=shop).select_related("user").order_by("pk")
    if only_uid is not None:
        agents = agents.filter(user_id=only_uid)
    return [
        {
            "uid": agent.user_id,
            "nickname": agent.user.display_name,
            "avatar": absolute_url(agent.user.avatar, base_url),
            "status": agent.status,
            "max_sessions": agent.max_sessions,
            "open_sessions": agent.open_sessions,
            "connected": agent.connected,
            "available": agent_available(agent),
            "last_assigned_at": unix(agent.last_assigned_at),
        }
        for agent in agents_with_state(agents)
    ]


class ShopOut(serializers.Serializer):
    shop_id = serializers.IntegerField()
    name = serializers.CharField()
    logo = serializers.URLField()
    strategy = serializers.ChoiceField(choices=Shop.Strategy.values)
    offline_notice = serializers.CharField()
    agents = serializers.IntegerField(help_text="agents of the shop")
    open_sessions = serializers.IntegerField()
    queued_sessions = serializers.IntegerField()


class AgentOut(serializers.Serializer):
    uid = serializers.IntegerField()
    nickname = serializers.CharField()
    avatar = serializers.URLField()
    status = serializers.ChoiceField(choices=Status.values)
    max_sessions = serializers.IntegerField()
    open_sessions = serializers.IntegerField(help_text="load: sessions open with this agent now")
    connected = serializers.BooleanField(help_text="has a live socket")
    available = serializers.BooleanField(help_text="online, connected and below max_sessions: gets new sessions")
    last_assigned_at = serializers.IntegerField(help_text="unix seconds; 0 never")


class ShopListApi(APIView):
    """The shops I own, with their agents and sessions counted."""

    @api(name="ShopList", result=ShopOut, many=True, errors=(401,), tags=["shops"])
    def get(self, request):
        shops = list(Shop.objects.filter(owner=request.user).annotate(agent_count=Count("agents")).order_by("pk"))
        counts = _session_counts([shop.pk for shop in shops])
        base_url = base_url_from_request(request)
        return ok([{
            "shop_id": shop.pk, "name": shop.name, "logo": absolute_url(shop.logo, base_url),
            "strategy": shop.strategy, "offline_notice": shop.offline_notice, "agents": shop.agent_count,
            "open_sessions": counts[shop.pk][State.OPEN], "queued_sessions": counts[shop.pk][State.QUEUED],
        } for shop in shops])


class ShopAgentListApi(APIView):
    """A shop's agents with their status and load (owner only)."""

    @api(name="ShopAgentList", result=AgentOut, many=True, tags=["shops"])
    def get(self, request, shop_id: int):
        shop = owned_shop(request, shop_id)
        return ok(_agent_rows(shop, base_url_from_request(request)))


class ShopAgentApi(APIView):
    """Set an agent's status and/or max sessions (owner only); routing sees it at once."""

    class AgentChangeInputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Status.values, required=False,
                                         help_text="online drains the queue; offline hands the agent's sessions back")
        max_sessions = serializers.IntegerField(required=False, min_value=0, max_value=10000)

        def validate(self, attrs):
            if not attrs:
                raise serializers.ValidationError("status or max_sessions: required")
            return attrs

    @api(name="ShopAgentChange", result=AgentOut, request=AgentChangeInputSerializer, tags=["shops"])
    def patch(self, request, shop_id: int, uid: int):
        shop = owned_shop(request, shop_id)
        data = validated(self.AgentChangeInputSerializer, body_of(request))
        agent = ServiceAgent.objects.filter(shop=shop, user_id=uid).select_related("user").first()
        if agent is None:
            raise not_found("uid: not an agent of this shop")
        base_url = base_url_from_request(request)
        if "max_sessions" in data:
            services.agent_set_capacity(agent=agent, max_sessions=data["max_sessions"], base_url=base_url)
        if "status" in data:
            services.agent_set_status(user=agent.user, status=data["status"], shop_id=shop.pk, base_url=base_url)
        return ok(_agent_rows(shop, base_url, only_uid=uid)[0])


class ContactGuardOut(serializers.Serializer):
    shop_id = serializers.IntegerField()
    contact_guard = serializers.ChoiceField(
        choices=Shop.ContactGuard.values,
        help_text="phone numbers, WeChat/QQ ids, e-mails and outside links in customer-service messages: off "
                  "(nothing), flag (delivered as written; 311 to the shop's agents, webhook message.flagged), "
                  "mask (replaced by *** for everyone)")


class OwnerShopSettingApi(APIView):
    """One setting of a shop that its owner alone reads and sets; the next message reads it."""

    field = ""
    Input: type[serializers.Serializer]

    def change(self, shop: Shop, value: Any) -> None:
        raise NotImplementedError

    def read(self, request, shop_id: int):
        shop = owned_shop(request, shop_id)
        return ok({"shop_id": shop.pk, self.field: getattr(shop, self.field)})

    def write(self, request, shop_id: int):
        shop = owned_shop(request, shop_id)
        self.change(shop, validated(self.Input, body_of(request))[self.field])
        return ok({"shop_id": shop.pk, self.field: getattr(shop, self.field)})


class ShopContactGuardApi(OwnerShopSettingApi):
    """The shop's contact guard (owner only): read it, or set it; the next message follows it."""

    class ContactGuardInputSerializer(serializers.Serializer):
        contact_guard = serializers.ChoiceField(choices=Shop.ContactGuard.values)

    field, Input = "contact_guard", ContactGuardInputSerializer

    def change(self, shop: Shop, value: Any) -> None:
        guard.shop_set_contact_guard(shop=shop, mode=value)

    @api(name="ShopContactGuard", result=ContactGuardOut, tags=["shops"])
    def get(self, request, shop_id: int):
        return self.read(request, shop_id)

    @api(name="ShopContactGuardSet", result=ContactGuardOut, request=ContactGuardInputSerializer, tags=["shops"])
    def put(self, request, shop_id: int):
        return self.write(request, shop_id)


class OfflineNotifyOut(serializers.Serializer):
    shop_id = serializers.IntegerField()
    offline_notify_minutes = serializers.IntegerField(
        min_value=0, max_value=MAX_OFFLINE_NOTIFY_MINUTES,
        help_text="the webhook notification.offline at most once per this many minutes per conversation and "
                  "receiver (a customer, or the agent of their open session, with no live connection); 0: never")


class ShopOfflineNotifyApi(OwnerShopSettingApi):
    """The shop's offline notifications to the mall (owner only): read the window, or set it."""

    class OfflineNotifyInputSerializer(serializers.Serializer):
        offline_notify_minutes = serializers.IntegerField(min_value=0, max_value=MAX_OFFLINE_NOTIFY_MINUTES)

    field, Input = "offline_notify_minutes", OfflineNotifyInputSerializer

    def change(self, shop: Shop, value: Any) -> None:
        offline.shop_set_offline_notify(shop=shop, minutes=value)

    @api(name="ShopOfflineNotify", result=OfflineNotifyOut, tags=["shops"])
    def get(self, request, shop_id: int):
        return self.read(request, shop_id)

    @api(name="ShopOfflineNotifySet", result=OfflineNotifyOut, request=OfflineNotifyInputSerializer, tags=["shops"])
    def put(self, request, shop_id: int):
        return self.write(request, shop_id)


class FlaggedMessageOut(serializers.Serializer):
    msg_id = serializers.IntegerField()
    chat_id = serializers.CharField()
    seq = serializers.IntegerField()
    consumer_uid = serializers.IntegerField(help_text="the customer of the conversation")
    from_uid = serializers.IntegerField(help_text="who wrote it: the consumer, or the agent")
    side = serializers.ChoiceField(choices=["consumer", "agent"])
    nickname = serializers.CharField(help_text="the writer's name")
    msg_type = serializers.IntegerField()
    msg = serializers.CharField()
    kinds = serializers.ListField(child=serializers.ChoiceField(choices=["phone", "wechat", "qq", "email", "link"]))
    createtime = serializers.IntegerField()


class FlaggedPageOut(serializers.Serializer):
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    rows = FlaggedMessageOut(many=True, help_text="newest first")


class ShopFlaggedMessagesApi(APIView):
    """Messages of the shop's customer service the contact guard flagged (its agents and owner)."""

    class FlaggedFilterSerializer(serializers.Serializer):
        page = QueryIntegerField(default=1, min_value=1, max_value=100000)
        limit = QueryIntegerField(default=20, min_value=1, max_value=100)

    @api(name="ShopFlaggedMessageList", result=FlaggedPageOut, parameters=[FlaggedFilterSerializer], tags=["shops"])
    def get(self, request, shop_id: int):
        shop = served_shop(request, shop_id)
        query = validated(self.FlaggedFilterSerializer, request.query_params)
        return ok(selectors.flagged_messages(shop_id=shop.pk, page=query["page"], limit=query["limit"]))


class IsSuperuser(BasePermission):
    message = "only platform staff (superusers) may send system notices"

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.is_superuser)


class NoticeApi(APIView):
    """Send a system notice (chat_type 3): to everyone (stored once), a user, a shop's agents and owner,
    or a group's members. Platform staff only (superusers, as in the admin; merchants are staff too)."""

    permission_classes = [IsSuperuser]

    class NoticeInputSerializer(serializers.Serializer):
        audience = serializers.ChoiceField(choices=Notice.Audience.values)
        target_id = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=INT64_MAX,
                                             help_text="the user, shop or group id (not for `all`)")
        text = serializers.CharField(max_length=5000)

    class NoticeOutputSerializer(serializers.Serializer):
        notice_id = serializers.IntegerField()
        audience = serializers.CharField()
        target_id = serializers.IntegerField(allow_null=True)
        recipients = serializers.IntegerField(help_text="boxes it was stored in (1 for everyone)")

    @api(name="NoticeSend", result=NoticeOutputSerializer, status=201, request=NoticeInputSerializer, tags=["notices"])
    def post(self, request):
        data = validated(self.NoticeInputSerializer, body_of(request))
        target_id = data.get("target_id")
        if data["audience"] == Notice.Audience.ALL:
            target_id = None
        elif target_id is None:
            raise bad_request("target_id: required")
        notice = notice_send_to(audience=data["audience"], target_id=target_id, text=data["text"],
                                sent_by=request.user)
        return ok({"notice_id": notice.pk, "audience": notice.audience, "target_id": notice.target_id,
                   "recipients": notice.recipients}, 201)


class MallShopSerializer(serializers.Serializer):
    id = serializers.IntegerField(min_value=1, max_value=INT64_MAX, help_text="the mall's shop id")
    name = serializers.CharField(max_length=64, required=False, help_text="required for a new shop")
    logo = serializers.CharField(max_length=500, required=False, allow_blank=True)
    owner_id = serializers.IntegerField(min_value=1, max_value=INT64_MAX, required=False,
                                        help_text="the merchant's user id (required for a new shop)")


class MallShopsApi(APIView):
    """The mall creates or updates its shops in bulk (idempotent upserts by id; send the owners first)."""

    authentication_classes = [mall.MallKeyAuthentication]
    permission_classes = [mall.IsMall]
    throttle_classes: list = []  # one trusted backend holding the key, syncing in bulk

    class MallShopsInputSerializer(serializers.Serializer):
        shops = MallShopSerializer(many=True, min_length=1, max_length=MALL_BATCH)

    class MallShopsOutputSerializer(serializers.Serializer):
        created = serializers.ListField(child=serializers.IntegerField())
        updated = serializers.ListField(child=serializers.IntegerField())
        unchanged = serializers.ListField(child=serializers.IntegerField())

    @api(name="MallShopsUpsert", result=MallShopsOutputSerializer, request=MallShopsInputSerializer,
         errors=(400, 401, 403, 404), tags=["mall"], throttled=False)
    def post(self, request):
        data = validated(self.MallShopsInputSerializer, body_of(request))
        return ok(shops_upsert(shops=data["shops"]))


# --- CSAT: ratings (customer_service/ratings.py) -------------------------------------------------


class RatingOut(serializers.Serializer):
    chat_id = serializers.CharField()
    shop_id = serializers.IntegerField()
    session_id = serializers.IntegerField()
    score = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(allow_blank=True)
    agent_uid = serializers.IntegerField(help_text="the agent who had the session; 0 none")


class RatingRowOut(RatingOut):
    consumer_uid = serializers.IntegerField()
    consumer_name = serializers.CharField()
    agent_name = serializers.CharField(allow_blank=True)
    closed_at = serializers.IntegerField(help_text="unix seconds")
    rated_at = serializers.IntegerField(help_text="unix seconds")


class RatingFiguresOut(serializers.Serializer):
    count = serializers.IntegerField()
    average = serializers.FloatField(allow_null=True, help_text="null with no rating")
    distribution = serializers.DictField(child=serializers.IntegerField(), help_text='{"1": n, ..., "5": n}')


class RatingAgentFiguresOut(RatingFiguresOut):
    shop_id = serializers.IntegerField()
    agent_uid = serializers.IntegerField()
    name = serializers.CharField(allow_blank=True)


class RatingShopFiguresOut(RatingFiguresOut):
    shop_id = serializers.IntegerField()


class RatingSummaryOut(RatingFiguresOut):
    since = serializers.IntegerField(help_text="unix seconds: the period's start")
    shops = RatingShopFiguresOut(many=True)
    agents = RatingAgentFiguresOut(many=True)


class RatingPageOut(serializers.Serializer):
    rows = RatingRowOut(many=True)
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    summary = RatingSummaryOut(help_text="over the same filters' shop and period (agent and score filters aside)")


class PendingRatingOut(serializers.Serializer):
    session_id = serializers.IntegerField()
    chat_id = serializers.CharField()
    shop_id = serializers.IntegerField()
    shop_name = serializers.CharField()
    agent_uid = serializers.IntegerField()
    closed_at = serializers.IntegerField()
    rate_until = serializers.IntegerField(help_text="unix seconds: the last moment to rate")


class RatingApi(APIView):
    """The consumer rates their closed session, once, within IM_CSAT_WINDOW_SECONDS (as service.rate)."""

    class RatingInputSerializer(serializers.Serializer):
        session_id = serializers.IntegerField(required=False, min_value=1, max_value=INT64_MAX,
                                             help_text="the session (the 305 closed's session_id); or chat_id")
        chat_id = serializers.CharField(required=False, max_length=64,
                                        help_text="the conversation: its latest closed session")
        score = serializers.IntegerField(min_value=1, max_value=5, error_messages={
            "invalid": "must be an integer from 1 to 5", "min_value": "must be an integer from 1 to 5",
            "max_value": "must be an integer from 1 to 5"})
        comment = serializers.CharField(required=False, allow_blank=True, max_length=ratings.COMMENT_MAX,
                                        trim_whitespace=True)

        def validate_score(self, value):
            if isinstance(self.initial_data.get("score"), bool | float):
                raise serializers.ValidationError("must be an integer from 1 to 5")
            return value

        def validate(self, attrs):
            if not attrs.get("session_id") and not attrs.get("chat_id"):
                raise serializers.ValidationError({"session_id": "required (or chat_id)"})
            return attrs

    @api(name="SessionRate", result=RatingOut, status=201, request=RatingInputSerializer, tags=["ratings"])
    def post(self, request):
        data = validated(self.RatingInputSerializer, body_of(request))
        session = ratings.session_rate(consumer=request.user, score=data["score"], comment=data.get("comment", ""),
                                       session_id=data.get("session_id"), chat_id=data.get("chat_id"))
        return ok(ratings.rating_event(session), 201)


class PendingRatingListApi(APIView):
    """My closed sessions that wait for a rating (each conversation's latest, unrated, within the window)."""

    @api(name="PendingRatingList", result=PendingRatingOut, many=True, errors=(401,), tags=["ratings"])
    def get(self, request):
        return ok(ratings.pending_for(request.user.pk))


class ShopRatingListApi(APIView):
    """A shop's ratings, newest first, with their summary (the shop's agents and owner)."""

    class RatingFilterSerializer(serializers.Serializer):
        agent_uid = QueryIntegerField(required=False, min_value=1, max_value=INT64_MAX)
        score = QueryIntegerField(required=False, min_value=1, max_value=5)
        since = QueryIntegerField(required=False, min_value=0, max_value=10**10,  # (year 2286: a datetime)
                                  help_text="unix seconds: ratings given since (default: the last 30 days)")
        page = QueryIntegerField(default=1, min_value=1, max_value=100000)

    @api(name="ShopRatingList", result=RatingPageOut, parameters=[RatingFilterSerializer], tags=["ratings"])
    def get(self, request, shop_id: int):
        shop = served_shop(request, shop_id)
        filters = validated(self.RatingFilterSerializer, request.query_params)
        since = (datetime.fromtimestamp(filters["since"], UTC) if "since" in filters
                 else timezone.now() - timedelta(days=ratings.REPORT_DAYS))
        rated = ratings.rated_sessions([shop.pk], agent_uid=filters.get("agent_uid"), score=filters.get("score"),
                                       since=since)
        start = (filters["page"] - 1) * ratings.PAGE_SIZE
        rows = rated.select_related("conversation", "consumer", "agent")[start:start + ratings.PAGE_SIZE]
        return ok({"rows": [ratings.rating_row(session) for session in rows], "total": rated.count(),
                   "page": filters["page"], "summary": ratings.rating_summary([shop.pk], since=since)})
class IntervalSerializer(serializers.Serializer):
    weekday = serializers.IntegerField(min_value=0, max_value=6, help_text="0 Monday .. 6 Sunday")
    opens = serializers.TimeField(format="%H:%M", input_formats=["%H:%M"], help_text="HH:MM, the shop's local time")
    closes = serializers.TimeField(format="%H:%M", input_formats=["%H:%M"],
                                   help_text="HH:MM; at or before `opens`: the next day (22:00-02:00)")


class ClosedDaySerializer(serializers.Serializer):
    date = serializers.DateField(help_text="YYYY-MM-DD: intervals starting that day stay closed")
    note = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class ShopHoursApi(APIView):
    """A shop's business hours, greeting and out-of-hours message (owner only). No intervals: always open."""

    class HoursInputSerializer(serializers.Serializer):
        timezone = serializers.CharField(max_length=64, help_text="IANA name, e.g. Europe/Berlin")
        schedule = IntervalSerializer(many=True, max_length=MAX_INTERVALS)
        closed_days = ClosedDaySerializer(many=True, max_length=MAX_CLOSED_DAYS, required=False, default=list)
        greeting = serializers.CharField(max_length=500, required=False, allow_blank=True,
                                         help_text="sent when a conversation starts in hours; blank: none")
        out_of_hours_message = serializers.CharField(max_length=500, required=False,
                                                     help_text="{next_opening} becomes the next opening time")

    class HoursOutputSerializer(serializers.Serializer):
        shop_id = serializers.IntegerField()
        timezone = serializers.CharField()
        schedule = IntervalSerializer(many=True)
        closed_days = ClosedDaySerializer(many=True)
        greeting = serializers.CharField()
        out_of_hours_message = serializers.CharField()
        always_open = serializers.BooleanField(help_text="no schedule: the shop is always open")
        open_now = serializers.BooleanField(read_only=True)
        next_opening = serializers.IntegerField(allow_null=True, read_only=True,
                                                help_text="unix seconds; null when open now (or no opening in a year)")

    @staticmethod
    def _reply(shop: Shop, hours: Hours) -> dict:
        closed = ShopClosedDay.objects.filter(shop=shop).order_by("date").values_list("date", "note")
        return {"shop_id": shop.pk, **hours_payload(hours, timezone.now()), "greeting": shop.greeting,
                "out_of_hours_message": shop.out_of_hours_message,
                "closed_days": [{"date": day.isoformat(), "note": note} for day, note in closed]}

    @api(name="ShopHours", result=HoursOutputSerializer, tags=["shops"])
    def get(self, request, shop_id: int):
        shop = owned_shop(request, shop_id)
        return ok(self._reply(shop, shop_hours(shop.pk, timezone=shop.timezone)))

    @api(name="ShopHoursSet", result=HoursOutputSerializer, request=HoursInputSerializer, tags=["shops"])
    def put(self, request, shop_id: int):
        shop = owned_shop(request, shop_id)
        data = validated(self.HoursInputSerializer, body_of(request))
        hours = services.shop_hours_set(
            shop=shop, timezone_name=data["timezone"],
            intervals=[Interval(row["weekday"], row["opens"], row["closes"]) for row in data["schedule"]],
            closed_days=[(row["date"], row.get("note", "")) for row in data["closed_days"]],
            greeting=data.get("greeting"), out_of_hours_message=data.get("out_of_hours_message"),
            base_url=base_url_from_request(request),
        )
        shop.refresh_from_db()
        return ok(self._reply(shop, hours))
class SearchHitOut(serializers.Serializer):
    chat_id = serializers.CharField()
    shop_id = serializers.IntegerField()
    uid = serializers.IntegerField(help_text="the customer")
    name = serializers.CharField(help_text="the customer's name")
    avatar = serializers.URLField()
    msg_id = serializers.IntegerField()
    seq = serializers.IntegerField()
    from_uid = serializers.IntegerField(help_text="the sender; 0 for a shop notice")
    from_customer = serializers.BooleanField()
    msg_type = serializers.IntegerField()
    snippet = serializers.CharField(help_text="plain text around the first match (… where cut); never HTML")
    marks = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField(), min_length=2,
                                                               max_length=2),
                                  help_text="[start, end) of each match in `snippet`, in Unicode code points")
    createtime = serializers.IntegerField()


class SearchCustomerOut(serializers.Serializer):
    chat_id = serializers.CharField()
    shop_id = serializers.IntegerField()
    uid = serializers.IntegerField()
    name = serializers.CharField()
    username = serializers.CharField()
    avatar = serializers.URLField()
    last_msg = serializers.CharField()
    last_msg_type = serializers.IntegerField()
    last_time = serializers.IntegerField()


class SearchOut(serializers.Serializer):
    q = serializers.CharField(help_text="the query as searched (trimmed)")
    order_id = serializers.CharField(allow_null=True, help_text="set for `order:<id>` queries")
    shop_ids = serializers.ListField(child=serializers.IntegerField(), help_text="the shops searched")
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    has_more = serializers.BooleanField(help_text="a next page exists")
    recent_only = serializers.BooleanField(
        help_text="the term has no three word characters in a row: only the shops' newest messages were "
                  "searched (IM_SEARCH_SHORT_WINDOW)")
    hits = SearchHitOut(many=True, help_text="messages, newest first")
    customers = SearchCustomerOut(many=True, help_text="page 1: conversations whose customer's name matches")


class MessageSearchApi(APIView):
    """Search my shops' customer-service conversations: message text, customer name, `order:<id>`."""

    class SearchFilterSerializer(serializers.Serializer):
        q = serializers.CharField(max_length=search.QUERY_MAX_CHARS,
                                  help_text="1-100 characters; `order:<id>` matches an order id exactly")
        shop_id = QueryIntegerField(required=False, min_value=1, max_value=INT64_MAX,
                                    help_text="one of my shops (default: all I serve)")
        page = QueryIntegerField(default=1, min_value=1, max_value=search.PAGE_MAX)
        page_size = QueryIntegerField(default=search.PAGE_SIZE_DEFAULT, min_value=1, max_value=search.PAGE_SIZE_MAX)

    @api(name="MessageSearch", result=SearchOut, parameters=[SearchFilterSerializer], errors=(400, 401, 403),
         tags=["search"])
    def get(self, request):
        data = validated(self.SearchFilterSerializer, request.query_params)
        caller = caller_of(request)
        return ok(search.conversations_search(user=caller.user, q=data["q"], shop_id=data.get("shop_id"),
                                              page=data["page"], page_size=data["page_size"],
                                              base_url=caller.base_url))
