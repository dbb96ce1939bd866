"""Reports over a date range: per day, per agent (and day), per shop (REST, CSV, the dashboard).

A row's figures come from four families, each one GROUP BY over its own time column and index:
sessions *started* that day (how many got a first reply; first-reply and queue-wait times), sessions
*closed* that day (resolution times), ratings *given* that day, and messages *sent* that day.
PostgreSQL computes the p50/p90 in SQL (`percentile_cont`, both from one sort); SQLite has no
percentile_cont, so there they come from a stream of the durations ordered by group, with the same
interpolation (`percentiles`). Nothing is read row by row into Python on PostgreSQL.

Days are the shop's own (Shop.timezone, midnight to midnight there, 23 or 25 hours on a DST change);
a report over several shops (the mall's, an owner's "all my shops") counts UTC days.

Finished days are kept: a day that ended more than IM_REPORT_SETTLED_SECONDS ago no longer changes, so
the first report that covers it computes its figures once per (shop, day, agent) into ReportFigures
(the same queries, grouped by shop, agent and day, a month at a time, inserted ON CONFLICT DO
NOTHING; ReportDay marks the days done) and later reports read those rows; the last days are
computed live. A whole month of kept days is summed once more per (shop, month, agent) into
ReportMonthFigures (ReportMonth marks it), so a row over many days (per agent, per shop) adds up about
12 rows a year and the days around them, the sums in SQL. Counts add up exactly; a row made of one
kept day (per day, per agent and day, of one shop; an agent's only day in the period) has that day's
exact percentiles, and any row over several (per agent or per shop over a range, several shops' day)
reads its p50/p90 from the days' summed histograms (histograms.py: off by at most one bucket,
12.2 %). Kept figures are history: deleting messages or users later does not change them.
"""

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import groupby
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import connection, transaction
from django.db.models import (Aggregate, BigIntegerField, Count, F, FloatField, Func, IntegerField, Max, Q, QuerySet,
                              Sum, Value)
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from accounts.models import User
from chat.models import ChatType, Message, SentAs
from customer_service import histograms
from customer_service.models import ReportDay, ReportFigures, ReportMonth, ReportMonthFigures, ServiceSession, Shop
from imchat.errors import bad_request
from imchat.sql import bounded

MAX_DAYS = 366
DEFAULT_DAYS = 7
FRACTIONS = (0.5, 0.9)
CHUNK = 2000
GROUPINGS = ("day", "agent", "agent_day", "shop")
PER_AGENT = ("agent", "agent_day", "shop_agent_day")
FILL_DAYS = 31  # kept days are computed a month per statement at most
ALL = -1  # ReportFigures.agent_key of a shop's whole day
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

# What adds up across days and agents (rating_sum: rating_average's numerator), and the durations.
SUMS = ("sessions_started", "sessions_answered", "sessions_closed", "ratings", "rating_sum", "messages_customer",
        "messages_agent")
DURATIONS = ("first_response", "resolution", "queue_wait")
# Every row's figures, in the CSV's column order.
FIGURES = (
    "sessions_started", "sessions_answered", "sessions_unanswered", "sessions_closed",
    "first_response_p50", "first_response_p90", "resolution_p50", "resolution_p90",
    "queue_wait_p50", "queue_wait_p90", "messages_customer", "messages_agent", "ratings", "rating_average",
)
PERCENTILES = tuple(name for name in FIGURES if name.endswith(("_p50", "_p90")))
HISTOGRAMS = tuple(f"{name}_hist" for name in DURATIONS)
KEPT_KEYS = {"day": ("day",), "agent": ("agent_key",), "agent_day": ("agent_key", "day"), "shop": ("shop_id",)}
KEY_COLUMNS = {"day": ("day",), "agent": ("agent_uid", "agent_name"), "agent_day": ("day", "agent_uid", "agent_name"),
               "shop": ("shop_id", "shop_name")}


@dataclass(frozen=True)
class Period:
    """The days since..until (both included), in `zone`."""

    since: date
    until: date
    zone: tzinfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.since, time.min, tzinfo=self.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.until + timedelta(days=1), time.min, tzinfo=self.zone)

    def days(self) -> Iterator[date]:
        for offset in range((self.until - self.since).days + 1):
            yield self.since + timedelta(days=offset)


def shop_zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _read_date(name: str, text: str) -> date:
    if not _DATE.fullmatch(text):
        raise bad_request(f"{name}: a date as YYYY-MM-DD")
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise bad_request(f"{name}: no such date") from None
    if not 2000 <= value.year <= 2999:
        raise bad_request(f"{name}: a year from 2000 to 2999")
    return value


def period_parse(since: str | None, until: str | None, *, zone: tzinfo, now: datetime | None = None,
                 default_days: int = DEFAULT_DAYS) -> Period:
    """since..until from YYYY-MM-DD texts (default: the last `default_days` days up to today in `zone`);
    code 0 naming the field for a bad date, an empty or a longer range than MAX_DAYS."""
    today = (now or timezone.now()).astimezone(zone).date()
    last = _read_date("until", until) if until else today
    first = _read_date("since", since) if since else last - timedelta(days=default_days - 1)
    if first > last:
        raise bad_request("since: after until")
    if (last - first).days >= MAX_DAYS:
        raise bad_request(f"until: at most {MAX_DAYS} days from since")
    return Period(first, last, zone)


# --- Percentiles --------------------------------------------------------------------------------


class Seconds(Func):
    """Seconds from the second expression to the first (PostgreSQL)."""

    template = "EXTRACT(EPOCH FROM (%(expressions)s))::float8"
    arg_joiner = " - "
    output_field = FloatField()


class Bucket(Func):
    """The histogram bucket of a number of seconds (histograms.bucket, in PostgreSQL)."""

    template = histograms.BUCKET_SQL
    output_field = IntegerField()


class Percentiles(Aggregate):
    """PostgreSQL's percentile_cont of all FRACTIONS from one sort of the group's values (nulls skipped)."""

    function = "percentile_cont"
    template = "%(function)s(%(fractions)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression, **extra):
        fractions = "ARRAY[" + ",".join(str(fraction) for fraction in FRACTIONS) + "]::float8[]"
        super().__init__(expression, fractions=fractions, output_field=ArrayField(FloatField()), **extra)


def percentiles(values: Sequence[float]) -> list[float | None]:
    """percentile_cont of sorted `values` for each of FRACTIONS: linear between the nearest ranks."""
    if not values:
        return [None] * len(FRACTIONS)
    result = []
    for fraction in FRACTIONS:
        position = fraction * (len(values) - 1)
        low = int(position)
        high = min(low + 1, len(values) - 1)
        result.append(values[low] + (values[high] - values[low]) * (position - low))
    return result


def _percentile_fields(name: str, values: Sequence[float | None] | None) -> dict[str, float | None]:
    values = values or [None] * len(FRACTIONS)
    return {f"{name}_p{round(fraction * 100)}": None if value is None else round(max(0.0, value), 1)
            for fraction, value in zip(FRACTIONS, values)}


# --- One family: a GROUP BY --------------------------------------------------------------------


def _grouped(queryset: QuerySet, keys: dict[str, Any], counts: dict[str, Aggregate],
             durations: dict[str, tuple[str, str]], bucketed: bool = False) -> dict[tuple, dict[str, Any]]:
    """{group key: figures} of `counts` and the percentiles of each duration (start column, end
    column), grouped by `keys` (alias: expression); `bucketed`: each duration's histogram too
    ("<name>_hist", one more GROUP BY per duration on PostgreSQL)."""
    names = list(keys)
    grouped = queryset.annotate(**keys).values(*names).order_by()
    if connection.vendor == "postgresql":
        spans = {name: Percentiles(Seconds(F(end), F(start))) for name, (start, end) in durations.items()}
        out = {}
        for row in grouped.annotate(**counts, **spans).iterator(chunk_size=CHUNK):
            figures = {name: row[name] for name in counts}
            for name in durations:
                figures.update(_percentile_fields(name, row[name]))
            out[tuple(row[key] for key in names)] = figures
        for name, (start, end) in durations.items() if bucketed else ():
            buckets = (queryset.filter(**{f"{end}__isnull": False})
                       .annotate(**keys, bucket=Bucket(Seconds(F(end), F(start)))).values(*names, "bucket")
                       .order_by().annotate(count=Count("*")))
            for row in buckets.iterator(chunk_size=CHUNK):
                out[tuple(row[key] for key in names)].setdefault(f"{name}_hist", Counter())[row["bucket"]] = row["count"]
        return out
    out = {tuple(row[key] for key in names): {name: row[name] for name in counts}
           for row in grouped.annotate(**counts).iterator(chunk_size=CHUNK)}
    width = len(names)
    for name, (start, end) in durations.items():
        stream = (queryset.annotate(**keys).filter(**{f"{end}__isnull": False})
                  .values_list(*names, start, end).order_by(*names).iterator(chunk_size=CHUNK))
        for key, rows in groupby(stream, key=lambda row: row[:width]):
            values = sorted((row[width + 1] - row[width]).total_seconds() for row in rows)
            out[key].update(_percentile_fields(name, percentiles(values)))
            if bucketed:
                out[key][f"{name}_hist"] = histograms.of(values)
    return out


def _sessions(shop_ids: list[int], column: str, period: Period, agent_uid: int | None) -> QuerySet:
    query = ServiceSession.objects.filter(shop_id__in=shop_ids,
                                          **{f"{column}__gte": period.start, f"{column}__lt": period.end})
    if agent_uid is not None:
        query = query.filter(agent_id=agent_uid)
    return query


def _keys(grouping: str, column: str, agent_column: str, zone: tzinfo) -> dict[str, Any]:
    # COALESCE: no agent is agent 0, and the planner does not walk the agent_id index for its order
    # (a million random heap reads) instead of the time range's index.
    every = {"day": TruncDate(column, tzinfo=zone),
             "agent_key": Coalesce(F(agent_column), Value(0), output_field=BigIntegerField()),
             "shop_key": F("shop_id")}
    wanted = {"day": ("day",), "agent": ("agent_key",), "agent_day": ("agent_key", "day"), "shop": ("shop_key",),
              "shop_day": ("shop_key", "day"), "shop_agent_day": ("shop_key", "agent_key", "day")}
    return {name: every[name] for name in wanted[grouping]}


def _families(shop_ids: list[int], period: Period, grouping: str, agent_uid: int | None,
              bucketed: bool) -> Iterator[dict[tuple, dict[str, Any]]]:
    # COUNT(*), never COUNT(id): the ids are not in the reports' indexes, and counting them would read
    # every row from the table instead of the index alone.
    zone = period.zone

    def sessions(column: str, counts: dict[str, Aggregate], durations: dict[str, tuple[str, str]]) -> dict:
        return _grouped(_sessions(shop_ids, column, period, agent_uid), _keys(grouping, column, "agent_id", zone),
                        counts, durations, bucketed)

    yield sessions("created_at", {"sessions_started": Count("*"), "sessions_answered": Count("first_response_at")},
                   {"first_response": ("created_at", "first_response_at"),
                    "queue_wait": ("created_at", "first_assigned_at")})
    yield sessions("closed_at", {"sessions_closed": Count("*")}, {"resolution": ("created_at", "closed_at")})
    yield sessions("rated_at", {"ratings": Count("*"), "rating_sum": Sum("rating")}, {})
    messages = Message.objects.filter(chat_type=ChatType.SERVICE, shop_id__in=shop_ids, created_at__gte=period.start,
                                      created_at__lt=period.end)
    if grouping in PER_AGENT:  # an agent's own messages; the customers' are the shop's
        messages = messages.filter(sent_as=SentAs.SERVICE)
        if agent_uid is not None:
            messages = messages.filter(sender_id=agent_uid)
        yield _grouped(messages, _keys(grouping, "created_at", "sender_id", zone),
                       {"messages_agent": Count("*")}, {})
    else:
        yield _grouped(messages, _keys(grouping, "created_at", "sender_id", zone),
                       {"messages_customer": Count("sent_as", filter=Q(sent_as=SentAs.USER)),
                        "messages_agent": Count("sent_as", filter=Q(sent_as=SentAs.SERVICE))}, {})


def _empty(grouping: str) -> dict[str, Any]:
    figures: dict[str, Any] = {name: None if name.endswith(("_p50", "_p90", "_average")) else 0 for name in FIGURES}
    if grouping in PER_AGENT:
        figures["messages_customer"] = None  # not an agent's figure
    return figures


def period_report(*, shop_ids: list[int] | None, period: Period, grouping: str,
                  agent_uid: int | None = None) -> list[dict[str, Any]]:
    """The rows of a report: `grouping` "day" (every day of the period, empty ones too), "agent",
    "agent_day" or "shop" (shops with activity); shop_ids None: every shop; agent_uid: that agent's
    sessions and messages only. Kept days and months from ReportFigures and ReportMonthFigures
    (computed first if missing), the rest in four queries whatever the size (a histogram query more
    per duration where they add to kept rows), under IM_REPORT_TIMEOUT_MS on PostgreSQL."""
    return bounded(lambda: _report(shop_ids, period, grouping, agent_uid), timeout_ms=settings.IM_REPORT_TIMEOUT_MS,
                   refusal=lambda: bad_request("since: too much to report in time; ask for fewer days"))


def _report(shop_ids: list[int] | None, period: Period, grouping: str, agent_uid: int | None) -> list[dict[str, Any]]:
    # Kept rows are per agent or per whole shop: a whole-shop grouping narrowed to one agent stays live.
    kept, live = settled_split(period) if agent_uid is None or grouping in PER_AGENT else (None, period)
    rows = _kept(shop_ids, kept, grouping, agent_uid) if kept else {}
    if live:
        merging = bool(rows) and grouping in ("agent", "shop")
        for key, figures in _live(shop_ids, live, grouping, agent_uid, bucketed=merging).items():
            _add(rows, key, figures)
    if grouping == "day":
        for day in period.days():
            rows.setdefault((day,), _empty(grouping))
    for figures in rows.values():
        _finish(figures, grouping)
    return _labelled(grouping, rows)


def _live(shop_ids: list[int] | None, period: Period, grouping: str, agent_uid: int | None,
          *, bucketed: bool) -> dict[tuple, dict[str, Any]]:
    if shop_ids is None:
        # Every shop by their ids: no index has the time first, and with the ids the planner reads
        # each shop's range of its (shop, time) index rather than the whole table.
        shop_ids = list(Shop.objects.values_list("pk", flat=True))
    rows: dict[tuple, dict[str, Any]] = {}
    for family in _families(shop_ids, period, grouping, agent_uid, bucketed):
        for key, figures in family.items():
            rows.setdefault(key, _empty(grouping)).update(figures)
    return rows


def _add(rows: dict[tuple, dict[str, Any]], key: tuple, figures: dict[str, Any]) -> None:
    """rows[key] += figures: the sums add up, the histograms too (the row's percentiles are then read
    from them)."""
    mine = rows.get(key)
    if mine is None:
        rows[key] = figures
        return
    for name in SUMS:
        if figures.get(name) is not None:
            mine[name] = (mine.get(name) or 0) + figures[name]
    for name in DURATIONS:
        mine[f"{name}_hist"] = histograms.merged(mine.get(f"{name}_hist"), figures.get(f"{name}_hist"))
    mine["merged"] = True


def _finish(figures: dict[str, Any], grouping: str) -> None:
    if figures.pop("merged", False):
        for name in DURATIONS:
            figures.update(_percentile_fields(name, histograms.percentiles(
                histograms.merged(figures.get(f"{name}_hist"), None), FRACTIONS)))
    for name in DURATIONS:
        figures.pop(f"{name}_hist", None)
    figures["sessions_unanswered"] = figures["sessions_started"] - figures["sessions_answered"]
    total = figures.pop("rating_sum", None) or 0
    figures["rating_average"] = round(total / figures["ratings"], 2) if figures["ratings"] else None
    if grouping in PER_AGENT:
        figures["messages_customer"] = None


# --- Kept days ----------------------------------------------------------------------------------


def settled_split(period: Period, now: datetime | None = None) -> tuple[Period | None, Period | None]:
    """The period's days that no longer change (kept), and the rest (computed live)."""
    settled = (now or timezone.now()) - timedelta(seconds=settings.IM_REPORT_SETTLED_SECONDS)
    last_kept = settled.astimezone(period.zone).date() - timedelta(days=1)
    if period.since > last_kept:
        return None, period
    if period.until <= last_kept:
        return period, None
    return Period(period.since, last_kept, period.zone), Period(last_kept + timedelta(days=1), period.until, period.zone)


def _kept(shop_ids: list[int] | None, period: Period, grouping: str, agent_uid: int | None) -> dict[tuple, dict]:
    """The kept rows of the period (kept first where missing), summed per the grouping's key. A row
    over days ("agent", "shop") reads the period's whole months from ReportMonthFigures and only the
    days around them from ReportFigures."""
    fill(shop_ids, period)
    zone = str(period.zone)

    def narrowed(query: QuerySet) -> QuerySet:
        query = query.filter(zone=zone) if shop_ids is None else query.filter(zone=zone, shop_id__in=shop_ids)
        if grouping in PER_AGENT:
            return query.filter(agent_key=agent_uid) if agent_uid is not None else query.filter(agent_key__gte=0)
        return query.filter(agent_key=ALL)

    keys = KEPT_KEYS[grouping]
    over_days = grouping in ("agent", "shop")  # every row may add live days too: all need their histograms
    days = narrowed(ReportFigures.objects.filter(day__gte=period.since, day__lte=period.until))
    months = _whole_months(period) if over_days else []
    rows = {}
    if months:
        start, end = months[0], _next_month(months[-1])
        days = days.filter(Q(day__lt=start) | Q(day__gte=end))
        rows = _summed(narrowed(ReportMonthFigures.objects.filter(month__gte=start, month__lt=end)), keys,
                       every=True)
    for key, figures in _summed(days, keys, every=over_days).items():
        _add(rows, key, figures)
    return {key: {**_empty(grouping), **figures} for key, figures in rows.items()}


def _summed(query: QuerySet, keys: Sequence[str], *, every: bool) -> dict[tuple, dict[str, Any]]:
    """Kept rows summed per `keys`: the sums in SQL; a key of one row has that row's percentiles, a
    key of several is "merged" (its percentiles read from its summed histograms). The histograms of
    every key (`every`) or of the merged ones only, each key's texts parsed in one go."""
    rows: dict[tuple, dict[str, Any]] = {}
    combined = set()
    for row in (query.values(*keys).order_by()
                .annotate(kept_rows=Count("*"), **{name: Sum(name) for name in SUMS},
                          **{name: Max(name) for name in PERCENTILES}).iterator(chunk_size=CHUNK)):
        key = tuple(row[name] for name in keys)
        rows[key] = {name: row[name] for name in SUMS}
        if row["kept_rows"] == 1:
            rows[key].update({name: row[name] for name in PERCENTILES})  # one kept row: its own
        else:
            combined.add(key)
    wanted = rows.keys() if every else combined
    if wanted:
        texts: dict[tuple, list[list[str]]] = {}
        width = len(keys)
        for row in query.values_list(*keys, *HISTOGRAMS).iterator(chunk_size=CHUNK):
            for kept_texts, text in zip(texts.setdefault(row[:width], [[] for _ in HISTOGRAMS]), row[width:]):
                kept_texts.append(text)
        for key in wanted:
            rows[key].update(zip(HISTOGRAMS, map(histograms.summed, texts[key])), merged=key in combined)
    return rows


def fill(shop_ids: list[int] | None, period: Period) -> None:
    """Keep the period's days not kept yet for these shops (None: every shop), a month at a time, then
    sum its whole months not summed yet; each month in one transaction, its rows inserted ON CONFLICT
    DO NOTHING: a concurrent fill of the same days writes the same figures, whichever lands first
    stays."""
    zone = str(period.zone)
    scopes = list(shop_ids) if shop_ids is not None else [0]
    done = set(ReportDay.objects.filter(Q(scope__in=scopes) | Q(scope=0), zone=zone, day__gte=period.since,
                                        day__lte=period.until).values_list("scope", "day"))
    missing = sorted({day for day in period.days() for scope in scopes
                      if (scope, day) not in done and (0, day) not in done})
    if missing:
        first = missing[0]
        while first <= missing[-1]:
            last = min(first + timedelta(days=FILL_DAYS - 1), missing[-1])
            _fill_days(shop_ids, scopes, Period(first, last, period.zone))
            first = last + timedelta(days=1)
    months = _whole_months(period)
    summed = set(ReportMonth.objects.filter(Q(scope__in=scopes) | Q(scope=0), zone=zone,
                                            month__in=months).values_list("scope", "month"))
    for month in months:
        unsummed = [scope for scope in scopes if (scope, month) not in summed and (0, month) not in summed]
        if unsummed:
            _sum_month(unsummed, zone, month)


def _fill_days(shop_ids: list[int] | None, scopes: list[int], period: Period) -> None:
    zone = str(period.zone)
    rows = []
    for grouping in ("shop_day", "shop_agent_day"):
        for key, figures in _live(shop_ids, period, grouping, None, bucketed=True).items():
            rows.append(ReportFigures(
                shop_id=key[0], zone=zone, day=key[-1], agent_key=ALL if grouping == "shop_day" else key[1],
                **{name: figures.get(name) or 0 for name in SUMS},
                **{name: figures.get(name) for name in PERCENTILES},
                **{name: histograms.dumps(figures.get(name) or {}) for name in HISTOGRAMS}))
    with transaction.atomic():
        ReportFigures.objects.bulk_create(rows, batch_size=CHUNK, ignore_conflicts=True)
        ReportDay.objects.bulk_create([ReportDay(scope=scope, zone=zone, day=day) for scope in scopes
                                       for day in period.days()], batch_size=CHUNK, ignore_conflicts=True)


def _sum_month(scopes: list[int], zone: str, month: date) -> None:
    """ReportMonthFigures of a month whose days are all kept for these scopes (0: every shop)."""
    days = ReportFigures.objects.filter(zone=zone, day__gte=month, day__lt=_next_month(month))
    if scopes != [0]:
        days = days.filter(shop_id__in=scopes)
    rows = []
    for (shop_id, agent_key), figures in _summed(days, ("shop_id", "agent_key"), every=True).items():
        if figures.pop("merged"):
            for name in DURATIONS:
                figures.update(_percentile_fields(name, histograms.percentiles(figures[f"{name}_hist"], FRACTIONS)))
        rows.append(ReportMonthFigures(shop_id=shop_id, zone=zone, month=month, agent_key=agent_key,
                                       **{name: figures[name] for name in (*SUMS, *PERCENTILES)},
                                       **{name: histograms.dumps(figures[name]) for name in HISTOGRAMS}))
    with transaction.atomic():
        ReportMonthFigures.objects.bulk_create(rows, batch_size=CHUNK, ignore_conflicts=True)
        ReportMonth.objects.bulk_create([ReportMonth(scope=scope, zone=zone, month=month) for scope in scopes],
                                        ignore_conflicts=True)


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def _whole_months(period: Period) -> list[date]:
    """The first days of the months that lie wholly in the period."""
    month = period.since if period.since.day == 1 else _next_month(period.since)
    months = []
    while _next_month(month) <= period.until + timedelta(days=1):
        months.append(month)
        month = _next_month(month)
    return months


def _labelled(grouping: str, rows: dict[tuple, dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in order with their keys named (agent and shop names looked up in one query each)."""
    if grouping == "shop":
        names = dict(Shop.objects.filter(pk__in=[key[0] for key in rows]).values_list("pk", "name"))
        return [{"shop_id": shop_id, "shop_name": names.get(shop_id, ""), **figures}
                for (shop_id,), figures in sorted(rows.items())]
    if grouping == "day":
        return [{"day": day.isoformat(), **figures} for (day,), figures in sorted(rows.items())]
    agents = {key[0] for key in rows if key[0]}
    names = {user.pk: user.display_name for user in User.objects.filter(pk__in=agents).only("username", "nickname")}
    return [{**({"day": key[1].isoformat()} if grouping == "agent_day" else {}),
             "agent_uid": key[0], "agent_name": names.get(key[0], ""), **figures}
            for key, figures in sorted(rows.items())]


def columns(grouping: str) -> tuple[str, ...]:
    """A report's CSV header."""
    return (*KEY_COLUMNS[grouping], *FIGURES)


def csv_rows(grouping: str, rows: Iterable[dict[str, Any]]) -> Iterator[list[Any]]:
    names = columns(grouping)
    yield list(names)
    for row in rows:
        yield ["" if row.get(name) is None else row[name] for name in names]
