"""Business hours as pure functions: time zones, DST days, closed dates, overnight, no schedule."""

from datetime import UTC, date, datetime, time

import pytest

from customer_service.hours import (
    ALWAYS_OPEN, Hours, Interval, check_schedule, check_timezone, describe_moment, is_open, next_opening,
)


def week(*days: int, opens: str = "09:00", closes: str = "18:00") -> tuple[Interval, ...]:
    return tuple(Interval(day, time.fromisoformat(opens), time.fromisoformat(closes)) for day in days)


OFFICE = Hours("Europe/Berlin", week(0, 1, 2, 3, 4) + week(5, opens="10:00", closes="16:00"))
BAR = Hours("America/New_York", week(4, 5, opens="22:00", closes="02:00"))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("hours", "moment", "open_now"), [
    (ALWAYS_OPEN, "2026-12-05T03:00", True),  # no schedule: always open
    (OFFICE, "2026-12-07T08:00", True),  # Monday 09:00 in Berlin (UTC+1)
    (OFFICE, "2026-12-07T07:59", False),
    (OFFICE, "2026-12-07T16:59", True),
    (OFFICE, "2026-12-07T17:00", False),  # 18:00 local: closes is exclusive
    (OFFICE, "2026-12-05T09:30", True),  # Saturday 10:30
    (OFFICE, "2026-12-06T12:00", False),  # Sunday
    (OFFICE, "2026-07-06T07:00", True),  # Monday 09:00 in summer (UTC+2)
    (OFFICE, "2026-07-06T16:00", False),  # 18:00 summer time
    (BAR, "2026-12-05T04:00", True),  # Friday 23:00 in New York
    (BAR, "2026-12-05T06:59", True),  # Saturday 01:59: Friday's interval still runs
    (BAR, "2026-12-05T07:00", False),  # Saturday 02:00
    (BAR, "2026-12-06T06:30", True),  # Sunday 01:30: Saturday's interval
    (BAR, "2026-12-07T06:30", False),  # Monday 01:30: no Sunday interval
])
def test_is_open_reads_the_schedule_in_the_shops_time_zone(hours, moment, open_now):
    assert is_open(hours, utc(moment)) is open_now


def test_a_day_when_the_clocks_change_keeps_the_wall_clock_hours():
    # given Berlin springs forward on Sunday 29 March 2026 (02:00 -> 03:00) and a Sunday schedule
    sunday = Hours("Europe/Berlin", week(6, opens="01:00", closes="12:00"))
    # then it opens at 01:00 CET and closes at 12:00 CEST: ten real hours
    assert not is_open(sunday, utc("2026-03-28T23:59"))
    assert is_open(sunday, utc("2026-03-29T00:00"))
    assert is_open(sunday, utc("2026-03-29T09:59"))
    assert not is_open(sunday, utc("2026-03-29T10:00"))
    # and on the autumn day (25 October) 01:00 CEST to 12:00 CET: twelve real hours
    assert is_open(sunday, utc("2026-10-24T23:00"))
    assert is_open(sunday, utc("2026-10-25T10:59"))
    assert not is_open(sunday, utc("2026-10-25T11:00"))


def test_a_time_the_clocks_skip_opens_as_if_they_had_not_changed_yet():
    early = Hours("Europe/Berlin", week(6, opens="02:30", closes="05:00"))
    assert next_opening(early, utc("2026-03-28T12:00")) == utc("2026-03-29T01:30")  # 03:30 CEST


def test_a_closed_day_cancels_the_intervals_that_start_on_it():
    christmas = Hours(OFFICE.timezone, OFFICE.intervals, frozenset({date(2026, 12, 24), date(2026, 12, 25)}))
    assert is_open(OFFICE, utc("2026-12-24T10:00"))
    assert not is_open(christmas, utc("2026-12-24T10:00"))
    assert next_opening(christmas, utc("2026-12-24T10:00")) == utc("2026-12-26T09:00")  # Saturday 10:00
    # an overnight interval that started the day before runs on into a closed date
    bar = Hours(BAR.timezone, BAR.intervals, frozenset({date(2026, 12, 5)}))
    assert is_open(bar, utc("2026-12-05T06:00"))
    assert not is_open(bar, utc("2026-12-06T04:00"))


@pytest.mark.parametrize(("hours", "moment", "expected"), [
    (OFFICE, "2026-12-05T16:00", "2026-12-07T08:00"),  # Saturday evening -> Monday 09:00
    (OFFICE, "2026-12-07T06:00", "2026-12-07T08:00"),  # Monday early -> the same morning
    (OFFICE, "2026-12-07T10:00", None),  # open now
    (ALWAYS_OPEN, "2026-12-07T10:00", None),
    (BAR, "2026-12-07T12:00", "2026-12-12T03:00"),  # Monday -> Friday 22:00 EST
    (OFFICE, "2026-03-27T18:00", "2026-03-28T09:00"),  # Friday -> Saturday 10:00 CET
    (OFFICE, "2026-03-28T16:00", "2026-03-30T07:00"),  # over the change -> Monday 09:00 CEST
])
def test_next_opening(hours, moment, expected):
    assert next_opening(hours, utc(moment)) == (utc(expected) if expected else None)


def test_the_next_opening_is_found_past_the_longest_run_of_closed_dates():
    first = date(2026, 12, 5).toordinal()
    run = frozenset(date.fromordinal(first + n) for n in range(400))  # the most check_schedule allows
    hours = Hours("UTC", week(0, 1, 2, 3, 4, 5, 6), run)
    assert not is_open(hours, utc("2026-12-05T12:00"))
    assert next_opening(hours, utc("2026-12-05T12:00")) == utc("2028-01-09T09:00")
    longer = Hours("UTC", hours.intervals, frozenset(date.fromordinal(first + n) for n in range(420)))
    assert next_opening(longer, utc("2026-12-05T12:00")) is None


def test_the_whole_day_is_midnight_to_midnight():
    hours = Hours("Asia/Shanghai", week(2, opens="00:00", closes="00:00"))
    assert is_open(hours, utc("2026-12-08T16:00"))  # Wednesday 00:00 in Shanghai
    assert is_open(hours, utc("2026-12-09T15:59"))
    assert not is_open(hours, utc("2026-12-09T16:00"))


@pytest.mark.parametrize("name", ["", "Mars/Olympus", "../../etc/passwd", "localtime", "europe/berlin", None, 3])
def test_a_bad_time_zone_is_refused(name):
    with pytest.raises(ValueError, match="timezone"):
        check_timezone(name)


def test_good_time_zones_pass():
    assert check_timezone("Europe/Berlin") == "Europe/Berlin"
    assert check_timezone("UTC") == "UTC"


@pytest.mark.parametrize(("intervals", "complaint"), [
    (week(0, opens="09:00", closes="12:00") + week(0, opens="11:00", closes="14:00"), "overlaps"),
    (week(0) + week(0), "overlaps"),
    (week(0, opens="22:00", closes="10:00") + week(1), "overlaps"),  # overnight into Tuesday 09:00
    (week(6, opens="22:00", closes="02:00") + week(0, opens="01:00", closes="03:00"), "overlaps"),  # the week wraps
    ((Interval(7, time(9), time(10)),), "weekday"),
    ((Interval(0, time(9, 0, 30), time(10)),), "minutes"),
    (week(0, 1, 2, 3, 4, 5, 6) * 7, "at most"),
])
def test_bad_schedules_are_refused(intervals, complaint):
    with pytest.raises(ValueError, match=complaint):
        check_schedule(intervals)


def test_good_schedules_pass():
    check_schedule(OFFICE.intervals)
    check_schedule(BAR.intervals)
    check_schedule(week(0, opens="09:00", closes="12:00") + week(0, opens="12:00", closes="18:00"))  # touching
    check_schedule(week(0, 1, 2, 3, 4, 5, 6, opens="00:00", closes="00:00"))  # open all week


def test_too_many_closed_days_are_refused():
    with pytest.raises(ValueError, match="closed_days"):
        check_schedule((), [date.fromordinal(739000 + n) for n in range(401)])


def test_a_moment_is_described_in_the_shops_time():
    assert describe_moment(utc("2026-12-07T08:00"), "Europe/Berlin") == "Mon 7 Dec 09:00 (Europe/Berlin)"
