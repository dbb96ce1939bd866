"""Kept days (customer_service/periods.py, ReportFigures) against the live path: the same counts, the
same per-day percentiles, percentiles over several days within one histogram bucket; a period half
kept and half live; kept figures are history (purged messages stay counted, a late rating counts on
its own day); filling twice writes nothing twice. And the histograms themselves."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from chat.models import Message
from customer_service import histograms, periods
from customer_service.models import ReportDay, ReportFigures, ReportMonthFigures, ServiceSession
from tests.customer_service.report_data import BERLIN, build, local

pytestmark = pytest.mark.django_db
LIVE = 100 * 365 * 86400
WIDTH = 0.122  # one bucket: histograms.PER_DECADE a decade
SINCE, UNTIL = "2026-03-27", "2026-03-31"


def report(settings, settled, grouping, shop_ids, **options):
    settings.IM_REPORT_SETTLED_SECONDS = settled
    period = periods.period_parse(SINCE, UNTIL, zone=options.pop("zone", BERLIN))
    return periods.period_report(shop_ids=shop_ids, period=period, grouping=grouping, **options)


def many_sessions(data, count=300):
    """More sessions over the five days with spread-out durations, so percentiles mean something."""
    randomness = random.Random(16)
    template = ServiceSession.objects.filter(shop_id=data["shop"]).first()
    sessions = []
    for index in range(count):
        start = local("2026-03-27T00:00") + timedelta(minutes=randomness.randrange(5 * 24 * 60))
        wait, reply, close = (randomness.lognormvariate(3, 1.5) for _ in range(3))
        sessions.append(ServiceSession(
            shop_id=data["shop"], consumer_id=template.consumer_id, conversation_id=template.conversation_id,
            agent_id=(data["amy"], data["ben"], None)[index % 3], state="closed", queued_at=start,
            first_assigned_at=start + timedelta(seconds=wait), first_response_at=start + timedelta(seconds=reply),
            closed_at=start + timedelta(seconds=reply + close), last_activity_at=start,
            rating=1 + index % 5 if index % 4 == 0 else None,
            rated_at=start + timedelta(hours=1) if index % 4 == 0 else None))
    created = ServiceSession.objects.bulk_create(sessions)
    for session, model in zip(created, sessions):
        ServiceSession.objects.filter(pk=session.pk).update(created_at=model.queued_at)


def close_to(kept, live):
    """A kept row over several days: counts exact, each percentile within one bucket of the live one."""
    assert kept.keys() == live.keys()
    for name, value in live.items():
        if name.endswith(("_p50", "_p90")) and value is not None:
            assert kept[name] == pytest.approx(value, rel=WIDTH, abs=1.2), name
        else:
            assert kept[name] == value, name


@pytest.mark.parametrize("grouping, options", [
    ("day", {}), ("agent_day", {}), ("day", {"zone": periods.UTC}),
])
def test_kept_days_give_the_live_figures_exactly_per_day(settings, grouping, options):
    data = build()
    many_sessions(data)
    live = report(settings, LIVE, grouping, [data["shop"]], **dict(options))
    kept = report(settings, 0, grouping, [data["shop"]], **dict(options))

    assert ReportFigures.objects.exists()
    assert kept == live
    assert 300 <= sum(row["sessions_started"] for row in kept) <= 306  # UTC days move a few out


@pytest.mark.parametrize("grouping, shop_ids, options", [
    ("agent", "shop", {}), ("shop", None, {"zone": periods.UTC}), ("day", "both", {"zone": periods.UTC}),
])
def test_rows_over_several_kept_days_or_shops_are_within_one_bucket_of_the_live_ones(settings, grouping,
                                                                                    shop_ids, options):
    data = build()
    many_sessions(data)
    shops = {"shop": [data["shop"]], "both": [data["shop"], data["other"]], None: None}[shop_ids]
    live = report(settings, LIVE, grouping, shops, **dict(options))
    kept = report(settings, 0, grouping, shops, **dict(options))

    assert len(kept) == len(live)
    for kept_row, live_row in zip(kept, live):
        close_to(kept_row, live_row)
    assert any(row["first_response_p90"] for row in kept)


def test_a_period_half_kept_and_half_live_adds_both_parts(settings):
    data = build()
    many_sessions(data)
    live = report(settings, LIVE, "agent", [data["shop"]])
    # Days up to 03-28 are settled: kept; 03-29..31 live.
    settled = int((timezone.now() - local("2026-03-29T12:00")).total_seconds())
    half = report(settings, settled, "agent", [data["shop"]])

    assert set(ReportDay.objects.values_list("day", flat=True)) == {local("2026-03-27").date(),
                                                                    local("2026-03-28").date()}
    for half_row, live_row in zip(half, live, strict=True):
        close_to(half_row, live_row)
    days = report(settings, settled, "day", [data["shop"]])
    assert days == report(settings, LIVE, "day", [data["shop"]])


def test_kept_days_are_history_purged_messages_stay_counted(settings):
    data = build()
    before = report(settings, 0, "day", [data["shop"]])
    Message.objects.filter(shop_id=data["shop"]).delete()

    assert report(settings, 0, "day", [data["shop"]]) == before
    assert sum(row["messages_customer"] for row in report(settings, LIVE, "day", [data["shop"]])) == 0


def test_a_late_rating_counts_on_the_day_it_is_given(settings):
    data = build()
    settled = int((timezone.now() - local("2026-03-30T12:00")).total_seconds())  # 03-27..29 kept
    before = {row["day"]: row for row in report(settings, settled, "day", [data["shop"]])}
    session = ServiceSession.objects.get(shop_id=data["shop"], created_at=local("2026-03-28T12:00"))
    ServiceSession.objects.filter(pk=session.pk).update(rating=4, rated_at=local("2026-03-31T08:00"))

    after = {row["day"]: row for row in report(settings, settled, "day", [data["shop"]])}
    assert after["2026-03-31"]["ratings"] == before["2026-03-31"]["ratings"] + 1
    assert after["2026-03-28"] == before["2026-03-28"]  # kept: not counted again on the day it began


def test_filling_again_or_concurrently_writes_each_row_once(settings):
    data = build()
    first = report(settings, 0, "agent_day", [data["shop"]])
    rows = ReportFigures.objects.count()
    ReportDay.objects.all().delete()  # as if another process had not marked its days yet
    period = periods.period_parse(SINCE, UNTIL, zone=BERLIN)
    periods.fill([data["shop"]], period)
    periods.fill([data["shop"]], period)

    assert ReportFigures.objects.count() == rows
    assert ReportDay.objects.count() == 5
    assert report(settings, 0, "agent_day", [data["shop"]]) == first


def test_another_shops_kept_rows_are_never_read(settings):
    data = build()
    report(settings, 0, "shop", None, zone=periods.UTC)  # keeps every shop's UTC days
    rows = report(settings, 0, "day", [data["shop"]], zone=periods.UTC)

    assert sum(row["sessions_started"] for row in rows) == 6  # the other shop's session is not there


def test_buckets_hold_their_values_and_add_up():
    for value in (0, 0.5, 1, 1.12, 9.99, 10, 59, 600, 86400 * 7):
        low, high = histograms.bounds(histograms.bucket(value))
        assert low <= value < high
    assert histograms.bucket(10.0 ** 12) == histograms.SIZE - 1
    total = histograms.summed([histograms.dumps(histograms.of([1, 2, 3])), "",
                               histograms.dumps(histograms.of([3, 400]))])
    total = histograms.merged(total, histograms.of([5000]))
    assert histograms.merged(total, None) == histograms.merged(None, histograms.of([1, 2, 3, 3, 400, 5000]))
    assert histograms.merged(list(total), total) == [count * 2 for count in total]
    assert histograms.dumps(total) == histograms.dumps(histograms.of([1, 2, 3, 3, 400, 5000]))
    assert histograms.dumps({}) == histograms.dumps([0] * histograms.SIZE) == ""
    assert histograms.summed([]) == histograms.merged(None, None) == [0] * histograms.SIZE


@pytest.mark.parametrize("seed", range(5))
def test_histogram_percentiles_are_within_one_bucket_of_percentile_cont(seed):
    randomness = random.Random(seed)
    values = sorted(randomness.lognormvariate(4, 2) for _ in range(randomness.randrange(1, 400)))
    exact = periods.percentiles(values)
    read = histograms.percentiles(histograms.of(values), periods.FRACTIONS)
    for got, want in zip(read, exact):
        assert got == pytest.approx(want, rel=WIDTH, abs=1.13)
    assert histograms.percentiles({}, periods.FRACTIONS) == [None, None]


def test_keepreports_keeps_each_shops_zone_and_every_shop_in_utc(settings):
    import io

    from django.core.management import call_command
    from django.core.management.base import CommandError

    data = build()
    settings.IM_REPORT_SETTLED_SECONDS = 0
    out = io.StringIO()
    call_command("keepreports", "--days", "366", stdout=out)

    assert set(ReportDay.objects.values_list("scope", "zone").distinct()) == {
        (data["shop"], "Europe/Berlin"), (data["other"], "Europe/Berlin"), (0, "UTC")}
    assert ReportFigures.objects.filter(zone="Europe/Berlin", shop_id=data["shop"]).exists()
    march = ReportMonthFigures.objects.get(zone="Europe/Berlin", shop_id=data["shop"], agent_key=periods.ALL,
                                           month="2026-03-01")  # whole months summed too
    assert march.sessions_started == 6
    with pytest.raises(CommandError):
        call_command("keepreports", "--days", "0")
