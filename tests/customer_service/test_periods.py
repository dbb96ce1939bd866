"""Reports over a date range (customer_service/periods.py) on hand-made sessions (report_data.py):
per day in the shop's zone, per agent, per shop; percentiles; the date range's rules. Each report
test runs twice: its days computed live, and kept (ReportFigures, filled by the report itself)."""

from datetime import UTC, date, datetime

import pytest

from customer_service import periods
from imchat.errors import AppError
from tests.customer_service.report_data import BERLIN, build

pytestmark = pytest.mark.django_db
SINCE, UNTIL = "2026-03-27", "2026-03-31"


@pytest.fixture(params=["live", "kept"])
def data(request, settings) -> dict[str, int]:
    settings.IM_REPORT_SETTLED_SECONDS = 0 if request.param == "kept" else 100 * 365 * 86400
    return {**build(), "kept": request.param == "kept"}


def over_days(data, value):
    """A percentile over several days: exact live, within one histogram bucket (12.2 %) when kept."""
    return pytest.approx(value, rel=0.122) if data["kept"] else value


def report(shop_ids, grouping, zone=BERLIN, **options):
    period = periods.period_parse(SINCE, UNTIL, zone=zone)
    return periods.period_report(shop_ids=shop_ids, period=period, grouping=grouping, **options)


def by_day(rows):
    return {row["day"]: row for row in rows}


def test_each_day_of_the_shop_counts_its_started_closed_and_rated_sessions_in_the_shops_zone(data):
    days = by_day(report([data["shop"]], "day"))

    assert list(days) == ["2026-03-27", "2026-03-28", "2026-03-29", "2026-03-30", "2026-03-31"]
    first = days["2026-03-27"]
    assert (first["sessions_started"], first["sessions_answered"], first["sessions_unanswered"],
            first["sessions_closed"]) == (2, 2, 0, 1)
    assert (first["first_response_p50"], first["first_response_p90"]) == (115.0, 183.0)  # 30 and 200 s
    assert (first["queue_wait_p50"], first["queue_wait_p90"]) == (60.0, 108.0)  # 0 and 120 s
    assert (first["resolution_p50"], first["resolution_p90"]) == (600.0, 600.0)
    assert (first["ratings"], first["rating_average"]) == (1, 5.0)
    assert (first["messages_customer"], first["messages_agent"]) == (2, 2)  # s2's reply is at 23:53:20


def test_a_session_spanning_midnight_starts_on_one_day_and_closes_on_the_next(data):
    days = by_day(report([data["shop"]], "day"))

    second = days["2026-03-28"]
    assert (second["sessions_started"], second["sessions_closed"]) == (1, 2)  # s3 starts; s2 and s3 close
    assert (second["resolution_p50"], second["resolution_p90"]) == (1800.0, 1800.0)
    assert (second["ratings"], second["rating_average"]) == (1, 3.0)  # s2, rated the next morning


def test_a_session_closed_without_a_first_reply_counts_as_unanswered_and_has_no_first_reply_time(data):
    second = by_day(report([data["shop"]], "day"))["2026-03-28"]

    assert (second["sessions_answered"], second["sessions_unanswered"]) == (0, 1)
    assert second["first_response_p50"] is None and second["first_response_p90"] is None
    assert second["queue_wait_p50"] == 60.0


def test_the_dst_day_is_the_shops_local_day_and_an_empty_day_is_all_zeros(data):
    days = by_day(report([data["shop"]], "day"))

    dst = days["2026-03-29"]  # 00:30 local is still the 28th in UTC
    assert (dst["sessions_started"], dst["sessions_answered"], dst["sessions_unanswered"]) == (2, 1, 1)
    assert dst["first_response_p50"] == 10.0 and dst["queue_wait_p50"] == 0.0
    empty = days["2026-03-30"]
    assert empty == {"day": "2026-03-30", **periods._empty("day")}
    assert empty["sessions_started"] == 0 and empty["first_response_p50"] is None


def test_the_same_shop_over_utc_days_moves_the_after_midnight_session_to_the_day_before(data):
    days = by_day(report([data["shop"]], "day", zone=UTC))

    assert days["2026-03-28"]["sessions_started"] == 2  # s3, and s4 (23:30 UTC)
    assert days["2026-03-29"]["sessions_started"] == 1


def test_another_shops_sessions_and_private_messages_are_never_counted(data):
    rows = report([data["shop"]], "day")

    assert sum(row["sessions_started"] for row in rows) == 6
    assert sum(row["ratings"] for row in rows) == 2
    assert sum(row["messages_customer"] for row in rows) == 6


def test_per_agent_the_figures_of_the_sessions_each_held_and_the_messages_each_wrote(data):
    rows = report([data["shop"]], "agent")

    assert [row["agent_uid"] for row in rows] == [0, data["amy"], data["ben"]]  # 0: never assigned
    nobody, amy, ben = rows
    assert nobody["sessions_started"] == 1 and nobody["agent_name"] == ""
    assert (amy["agent_name"], amy["sessions_started"], amy["sessions_answered"], amy["sessions_closed"]) == \
        ("Rep-Amy", 3, 2, 2)
    assert amy["first_response_p50"] == over_days(data, 20.0)  # 10 and 30 s
    assert amy["first_response_p90"] == over_days(data, 28.0)
    assert (amy["messages_agent"], amy["messages_customer"]) == (2, None)
    assert (ben["sessions_started"], ben["ratings"], ben["rating_average"], ben["messages_agent"]) == (2, 1, 3.0, 2)
    assert ben["resolution_p50"] == over_days(data, 950.0)  # 100 and 1800 s
    assert ben["resolution_p90"] == over_days(data, 1630.0)


def test_per_agent_and_day_and_only_one_agents_rows(data):
    rows = report([data["shop"]], "agent_day", agent_uid=data["amy"])

    assert [(row["agent_uid"], row["day"]) for row in rows] == [
        (data["amy"], "2026-03-27"), (data["amy"], "2026-03-28"), (data["amy"], "2026-03-29")]
    assert [row["sessions_started"] for row in rows] == [1, 1, 1]
    assert [row["messages_agent"] for row in rows] == [1, 0, 1]


def test_per_shop_over_every_shop(data):
    rows = report(None, "shop", zone=UTC)

    assert [(row["shop_id"], row["shop_name"]) for row in rows] == [(data["shop"], "Report Tea"),
                                                                   (data["other"], "Other Tea")]
    assert rows[0]["sessions_started"] == 6 and rows[1]["sessions_started"] == 1
    assert rows[1]["rating_average"] == 1.0


def test_percentiles_interpolate_between_ranks_as_postgresqls_percentile_cont():
    assert periods.percentiles([]) == [None, None]
    assert periods.percentiles([7.0]) == [7.0, 7.0]
    assert periods.percentiles([1.0, 2.0, 3.0, 4.0]) == [2.5, pytest.approx(3.7)]
    assert periods.percentiles([float(n) for n in range(1, 11)]) == [5.5, pytest.approx(9.1)]


# --- The range ----------------------------------------------------------------------------------


def test_the_default_period_is_the_last_seven_days_up_to_today_in_the_zone():
    now = datetime(2026, 3, 29, 23, 30, tzinfo=UTC)  # already the 30th in Berlin

    period = periods.period_parse(None, None, zone=BERLIN, now=now)

    assert (period.since, period.until) == (date(2026, 3, 24), date(2026, 3, 30))
    assert period.start == datetime(2026, 3, 24, tzinfo=BERLIN)
    assert (period.end.astimezone(UTC) - period.start).total_seconds() == 7 * 86400 - 3600  # DST: a 23-hour day


@pytest.mark.parametrize("since, until, message", [
    ("2026-3-1", "2026-03-02", "since: a date as YYYY-MM-DD"),
    ("2026-02-30", "2026-03-02", "since: no such date"),
    ("20260301", "2026-03-02", "since: a date as YYYY-MM-DD"),
    ("2026-03-01", "yesterday", "until: a date as YYYY-MM-DD"),
    ("２０２６-03-01", "2026-03-02", "since: a date as YYYY-MM-DD"),
    ("2026-03-05", "2026-03-01", "since: after until"),
    ("2025-01-01", "2026-01-02", "until: at most 366 days from since"),
    ("1999-12-31", "2000-01-01", "since: a year from 2000 to 2999"),
    ("2026-01-01", "9999-12-31", "until: a year from 2000 to 2999"),
])
def test_a_bad_or_too_long_range_is_refused_naming_the_field(since, until, message):
    with pytest.raises(AppError) as refused:
        periods.period_parse(since, until, zone=UTC)

    assert refused.value.msg == message


def test_a_leap_year_fits_in_one_report():
    period = periods.period_parse("2028-01-01", "2028-12-31", zone=UTC)

    assert len(list(period.days())) == 366


def test_the_csv_rows_are_the_header_then_one_line_per_row_with_blanks_for_none(data):
    rows = list(periods.csv_rows("day", report([data["shop"]], "day")))

    assert rows[0] == ["day", *periods.FIGURES]
    assert rows[4][0] == "2026-03-30" and rows[4][rows[0].index("first_response_p50")] == ""
    assert len(rows) == 6
