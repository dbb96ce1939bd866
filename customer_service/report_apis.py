"""Reports over a date range over HTTP (customer_service/periods.py): JSON, and the same rows as a
streamed CSV download.

Who sees what: a shop's owner, superusers and the mall (X-Imchat-Api-Key) every row of the shop; its
agents the shop's daily figures and, per agent, only their own row. The mall-wide report per shop
is for the mall and superusers.
"""

import csv
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.views import APIView

from accounts.authentication import JWTAuthentication
from accounts.mall import MallClient, MallKeyAuthentication
from customer_service import periods, selectors
from customer_service.models import Shop
from imchat.api import ok
from imchat.errors import forbidden, not_found
from imchat.inputs import validated
from imchat.openapi import ErrorSerializer, api
from imchat.throttling import AnonThrottle, PerUser

TAGS = ["reports"]
# What a spreadsheet would run as a formula if a cell began with it (a shop or agent named "=HYPERLINK(...)").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def report_access(request, shop_id: int) -> tuple[Shop, int | None]:
    """The shop and whose rows the caller sees: None everyone's (owner, superuser, the mall), or
    their own uid (an agent). -404 no such shop, -403 anyone else."""
    shop = Shop.objects.filter(pk=shop_id).first()
    if shop is None:
        raise not_found("shop_id: no such shop")
    user = request.user
    if isinstance(user, MallClient) or user.is_superuser or shop.owner_id == user.pk:
        return shop, None
    if selectors.can_serve(user.pk, shop.pk):
        return shop, user.pk
    raise forbidden("not an agent of this shop")


def _mall_or_superuser(request) -> None:
    if not (isinstance(request.user, MallClient) or request.user.is_superuser):
        raise forbidden("the report of every shop is for the mall (X-Imchat-Api-Key) and superusers")


class RangeFilter(serializers.Serializer):
    since = serializers.CharField(required=False, max_length=10,
                                  help_text="first day, YYYY-MM-DD (default: 6 days before `until`)")
    until = serializers.CharField(required=False, max_length=10,
                                  help_text=f"last day, YYYY-MM-DD, included (default: today); at most "
                                            f"{periods.MAX_DAYS} days from `since`")


class AgentRangeFilter(RangeFilter):
    per_day = serializers.BooleanField(required=False, default=False,
                                       help_text="one row per agent and day instead of per agent")


class FiguresOut(serializers.Serializer):
    sessions_started = serializers.IntegerField(help_text="sessions begun that day (or in the period)")
    sessions_answered = serializers.IntegerField(help_text="of those, how many got an agent's first reply")
    sessions_unanswered = serializers.IntegerField(help_text="of those, how many have none (yet)")
    sessions_closed = serializers.IntegerField(help_text="sessions closed that day")
    first_response_p50 = serializers.FloatField(allow_null=True, help_text="seconds from start to first reply")
    first_response_p90 = serializers.FloatField(allow_null=True)
    resolution_p50 = serializers.FloatField(allow_null=True, help_text="seconds from start to close, of those closed")
    resolution_p90 = serializers.FloatField(allow_null=True)
    queue_wait_p50 = serializers.FloatField(allow_null=True, help_text="seconds from start to the first agent")
    queue_wait_p90 = serializers.FloatField(allow_null=True)
    messages_customer = serializers.IntegerField(allow_null=True, help_text="null in per-agent rows")
    messages_agent = serializers.IntegerField(help_text="agents' messages (per agent: their own)")
    ratings = serializers.IntegerField(help_text="ratings given that day")
    rating_average = serializers.FloatField(allow_null=True)


class DayRowOut(FiguresOut):
    day = serializers.DateField()


class AgentRowOut(FiguresOut):
    day = serializers.DateField(required=False, help_text="with per_day only")
    agent_uid = serializers.IntegerField(help_text="0: sessions no agent took")
    agent_name = serializers.CharField(allow_blank=True)


class ShopRowOut(FiguresOut):
    shop_id = serializers.IntegerField()
    shop_name = serializers.CharField()


def _report_out(name: str, row: type[serializers.Serializer]) -> type[serializers.Serializer]:
    return type(name, (serializers.Serializer,), {
        "shop_id": serializers.IntegerField(required=False, help_text="absent in the report of every shop"),
        "timezone": serializers.CharField(help_text="the days' zone: the shop's, or UTC for every shop"),
        "since": serializers.DateField(),
        "until": serializers.DateField(),
        "rows": row(many=True),
    })


DailyReportOut = _report_out("DailyReportOut", DayRowOut)
AgentReportOut = _report_out("AgentReportOut", AgentRowOut)
ShopReportOut = _report_out("ShopReportOut", ShopRowOut)


# --- The reports, as JSON and as CSV --------------------------------------------------------------


class _Report:
    """One report request: its period, grouping and rows (computed when read: a CSV streams them)."""

    def __init__(self, request, shop: Shop | None, filter_class: type[serializers.Serializer], grouping: str,
                 agent_uid: int | None = None):
        query = validated(filter_class, request.query_params)
        zone = periods.shop_zone(shop.timezone) if shop else UTC
        self.period = periods.period_parse(query.get("since"), query.get("until"), zone=zone)
        self.grouping = "agent_day" if grouping == "agent" and query.get("per_day") else grouping
        self.shop, self.agent_uid = shop, agent_uid

    def rows(self) -> list[dict[str, Any]]:
        return periods.period_report(shop_ids=[self.shop.pk] if self.shop else None, period=self.period,
                                     grouping=self.grouping, agent_uid=self.agent_uid)

    def json(self):
        head = {"shop_id": self.shop.pk} if self.shop else {}
        return ok({**head, "timezone": str(self.period.zone), "since": self.period.since.isoformat(),
                   "until": self.period.until.isoformat(), "rows": self.rows()})

    def csv(self) -> StreamingHttpResponse:
        scope = f"shop{self.shop.pk}" if self.shop else "shops"
        name = f"imchat-{scope}-{self.grouping.replace('_', '-')}-{self.period.since}-{self.period.until}.csv"
        # The rows are computed here (an error is still a JSON reply), then written line by line.
        return csv_response(name, periods.csv_rows(self.grouping, self.rows()))


class _Echo:
    """csv.writer's file: hands each line back instead of keeping it."""

    def write(self, line: str) -> str:
        return line


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_response(filename: str, lines: Iterable[list[Any]]) -> StreamingHttpResponse:
    """A CSV download written line by line as it is sent (Django's StreamingHttpResponse)."""
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse((writer.writerow([_cell(value) for value in line]) for line in lines),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _csv_schema(name: str, filters: type[serializers.Serializer], description: str):
    return extend_schema(operation_id=name, parameters=[filters], tags=TAGS, description=description,
                         responses={(200, "text/csv"): OpenApiTypes.STR,
                                    **{code: ErrorSerializer for code in (400, 401, 403, 404, 429)}})


class ReportThrottle(PerUser):
    """Reports per user (IM_REPORT_RATE): each may read a year of a shop."""

    scope = "report"


class _ReportView(APIView):
    throttle_classes = [AnonThrottle, ReportThrottle]

    def get_authenticators(self):
        """The mall's key when the request carries one; otherwise the users' own logins."""
        return [MallKeyAuthentication(only_when_sent=True), JWTAuthentication(), SessionAuthentication()]

    def perform_content_negotiation(self, request, force=False):
        # `Accept: text/csv` is welcome on the exports; errors still answer in JSON.
        return super().perform_content_negotiation(request, force=True)


class ShopDailyReportApi(_ReportView):
    """A shop's figures per day of its own time zone (its owner and agents, superusers, the mall)."""

    @api(name="ShopDailyReport", result=DailyReportOut, parameters=[RangeFilter], tags=TAGS)
    def get(self, request, shop_id: int):
        shop, _ = report_access(request, shop_id)
        return _Report(request, shop, RangeFilter, "day").json()


class ShopDailyReportExportApi(_ReportView):
    @_csv_schema("shopDailyReportExport", RangeFilter, "The daily report as CSV, streamed (a header line, "
                                                       "then one line per day).")
    def get(self, request, shop_id: int):
        shop, _ = report_access(request, shop_id)
        return _Report(request, shop, RangeFilter, "day").csv()


class ShopAgentReportApi(_ReportView):
    """A shop's figures per agent (or per agent and day): the owner, superusers and the mall see every
    agent, an agent only their own row."""

    @api(name="ShopAgentReport", result=AgentReportOut, parameters=[AgentRangeFilter], tags=TAGS)
    def get(self, request, shop_id: int):
        shop, only = report_access(request, shop_id)
        return _Report(request, shop, AgentRangeFilter, "agent", agent_uid=only).json()


class ShopAgentReportExportApi(_ReportView):
    @_csv_schema("shopAgentReportExport", AgentRangeFilter, "The per-agent report as CSV, streamed.")
    def get(self, request, shop_id: int):
        shop, only = report_access(request, shop_id)
        return _Report(request, shop, AgentRangeFilter, "agent", agent_uid=only).csv()


class ShopsReportApi(_ReportView):
    """Every shop's figures over the period, one row per shop with activity (UTC days): which shops
    answer slowly. The mall (X-Imchat-Api-Key) and superusers."""

    @api(name="ShopsReport", result=ShopReportOut, parameters=[RangeFilter], tags=TAGS)
    def get(self, request):
        _mall_or_superuser(request)
        return _Report(request, None, RangeFilter, "shop").json()


class ShopsReportExportApi(_ReportView):
    @_csv_schema("shopsReportExport", RangeFilter, "The report of every shop as CSV, streamed.")
    def get(self, request):
        _mall_or_superuser(request)
        return _Report(request, None, RangeFilter, "shop").csv()
