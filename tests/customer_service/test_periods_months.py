"""Kept months (customer_service/periods.py, ReportMonthFigures): a whole month's days summed once per
shop and agent; reports per agent and per shop over several months read them and give the counts of
the days exactly, percentiles within one histogram bucket, and a single kept day's own percentiles."""

import random
from datetime import date, timedelta

import pytest
from django.utils import timezone

from customer_service import periods
from customer_service.models import ReportFigures, ReportMonth, ReportMonthFigures, ServiceSession
from tests.customer_service.report_data import BERLIN, build, local
from tests.customer_service.test_periods_kept import LIVE, close_to

pytestmark = pytest.mark.django_db
SINCE, UNTIL = "2026-01-20", "2026-04-10"  # whole months: February and March


def report(settings, settled, grouping, shop_ids, since=SINCE, until=UNTIL, **options):
    settings.IM_REPORT_SETTLED_SECONDS = settled
    period = periods.period_parse(since, until, zone=options.pop("zone", BERLIN))
    return periods.period_report(shop_ids=shop_ids, period=period, grouping=grouping, **options)


def months_of_sessions(data, count=400):
    """Sessions from 01-20 to 04-10 with spread-out durations; ben works one day of February only."""
    randomness = random.Random(7)
    template = ServiceSession.objects.filter(shop_id=data["shop"]).first()
    sessions = []
    for index in range(count):
        start = local("2026-01-20T00:00") + timedelta(minutes=randomness.randrange(80 * 24 * 60))
        agent = data["amy"] if index % 2 else None
        if index % 50 == 0:
            agent, start = data["ben"], local("2026-02-10T09:00") + timedelta(minutes=index)
        wait, reply, close = (randomness.lognormvariate(3, 1.5) for _ in range(3))
        sessions.append(ServiceSession(
            shop_id=data["shop"], consumer_id=template.consumer_id, conversation_id=template.conversation_id,
            agent_id=agent, state="closed", queued_at=start, first_assigned_at=start + timedelta(seconds=wait),
            first_response_at=start + timedelta(seconds=reply), closed_at=start + timedelta(seconds=reply + close),
            last_activity_at=start, rating=1 + index % 5 if index % 3 == 0 else None,
            rated_at=start + timedelta(hours=1) if index % 3 == 0 else None))
    for session, model in zip(ServiceSession.objects.bulk_create(sessions), sessions):
        ServiceSession.objects.filter(pk=session.pk).update(created_at=model.queued_at)


@pytest.mark.parametrize("grouping, shop_ids, options", [
    ("agent", "shop", {}), ("shop", None, {"zone": periods.UTC}), ("agent", "shop", {"agent_uid": "amy"}),
])
def test_rows_over_kept_months_give_the_days_counts_and_percentiles_within_one_bucket(settings, grouping,
                                                                                   shop_ids, options):
    data = build()
    months_of_sessions(data)
    shops = {"shop": [data["shop"]], None: None}[shop_ids]
    if "agent_uid" in options:
        options["agent_uid"] = data[options["agent_uid"]]
    live = report(settings, LIVE, grouping, shops, **dict(options))
    kept = report(settings, 0, grouping, shops, **dict(options))

    assert {month for (month,) in ReportMonth.objects.values_list("month")} == {date(2026, 2, 1), date(2026, 3, 1)}
    assert len(kept) == len(live) > 0
    for kept_row, live_row in zip(kept, live):
        close_to(kept_row, live_row)
    assert sum(row["sessions_started"] for row in kept) > 150


def test_a_months_figures_are_its_days_summed(settings):
    data = build()
    months_of_sessions(data)
    report(settings, 0, "agent", [data["shop"]])

    month = ReportMonthFigures.objects.get(shop_id=data["shop"], zone="Europe/Berlin", month=date(2026, 3, 1),
                                           agent_key=data["amy"])
    days = ReportFigures.objects.filter(shop_id=data["shop"], zone="Europe/Berlin", agent_key=data["amy"],
                                        day__gte=date(2026, 3, 1), day__lte=date(2026, 3, 31))
    for name in periods.SUMS:
        assert getattr(month, name) == sum(getattr(day, name) for day in days), name
    assert month.sessions_started > 50
    per_day = report(settings, 0, "agent_day", [data["shop"]], agent_uid=data["amy"])
    per_agent = report(settings, 0, "agent", [data["shop"]], agent_uid=data["amy"])
    for name in ("sessions_started", "sessions_answered", "sessions_closed", "ratings", "messages_agent"):
        assert per_agent[0][name] == sum(row[name] for row in per_day), name


def test_an_agent_with_one_kept_day_has_that_days_exact_percentiles(settings):
    data = build()
    months_of_sessions(data)
    live = report(settings, LIVE, "agent", [data["shop"]], since="2026-02-01", until="2026-02-28")
    kept = report(settings, 0, "agent", [data["shop"]], since="2026-02-01", until="2026-02-28")

    ben = [row for row in kept if row["agent_uid"] == data["ben"]]
    assert ReportMonthFigures.objects.filter(agent_key=data["ben"]).count() == 1
    assert ben == [row for row in live if row["agent_uid"] == data["ben"]]
    assert ben[0]["sessions_started"] == 8 and ben[0]["first_response_p90"] is not None


def test_a_period_of_kept_months_days_and_live_days_adds_all_three(settings):
    data = build()
    months_of_sessions(data)
    live = report(settings, LIVE, "agent", [data["shop"]])
    settled = int((timezone.now() - local("2026-04-05T12:00")).total_seconds())  # up to 04-04 kept, then live
    mixed = report(settings, settled, "agent", [data["shop"]])

    assert ReportMonth.objects.count() == 2
    for mixed_row, live_row in zip(mixed, live, strict=True):
        close_to(mixed_row, live_row)


def test_months_are_summed_once_and_every_shops_months_serve_one_shop(settings):
    data = build()
    months_of_sessions(data)
    every = report(settings, 0, "shop", None, zone=periods.UTC)  # keeps and sums every shop's UTC months
    rows = ReportMonthFigures.objects.count()
    ReportMonth.objects.filter(scope=0).update(scope=data["other"])  # as if only the other shop's were marked
    one = report(settings, 0, "shop", [data["shop"]], zone=periods.UTC)
    report(settings, 0, "agent", [data["shop"]], zone=periods.UTC)

    assert ReportMonthFigures.objects.count() == rows  # summed again for this shop: nothing written twice
    assert set(ReportMonth.objects.values_list("scope", flat=True)) == {data["shop"], data["other"]}
    assert one == [row for row in every if row["shop_id"] == data["shop"]]


def test_a_report_over_whole_months_reads_the_months_not_their_days(settings):
    data = build()
    months_of_sessions(data)
    before = report(settings, 0, "agent", [data["shop"]], since="2026-02-01", until="2026-03-31")
    ReportFigures.objects.filter(day__gte=date(2026, 2, 1), day__lte=date(2026, 3, 31)).delete()

    assert report(settings, 0, "agent", [data["shop"]], since="2026-02-01", until="2026-03-31") == before
    assert report(settings, 0, "agent_day", [data["shop"]], since="2026-02-01", until="2026-03-31") == []
