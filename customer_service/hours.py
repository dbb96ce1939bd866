"""A shop's business hours: pure functions of a schedule and a moment (no database, no clock).

A schedule is weekly intervals in the shop's time zone plus closed dates. An interval opens on its
weekday at `opens` (local wall time) and closes at `closes` the same day, or the next day when
`closes <= opens` (22:00-02:00 is overnight; 00:00-00:00 is the whole day). A closed date cancels
the intervals that *start* on it. Wall times are turned into moments one day at a time, so a day
when the clocks change is as long as it really is; a time the clocks skip (02:30 on the night they
spring forward) is read with the offset before the change, an ambiguous one as its first occurrence.
An empty schedule means always open: shops that never set hours behave as before.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

MAX_INTERVALS = 42  # six a day
MAX_CLOSED_DAYS = 400
SEARCH_DAYS = MAX_CLOSED_DAYS + 8  # a next opening is found past any run of closed dates
WEEK_MINUTES = 7 * 24 * 60
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Interval:
    weekday: int  # 0 Monday .. 6 Sunday, as date.weekday()
    opens: time
    closes: time  # <= opens: on the next day

    @property
    def overnight(self) -> bool:
        return self.closes <= self.opens

    def __str__(self) -> str:
        return f"{WEEKDAYS[self.weekday]} {self.opens:%H:%M}-{self.closes:%H:%M}"


@dataclass(frozen=True)
class Hours:
    timezone: str = "UTC"
    intervals: tuple[Interval, ...] = ()
    closed_days: frozenset[date] = field(default_factory=frozenset)

    @property
    def always_open(self) -> bool:
        return not self.intervals


ALWAYS_OPEN = Hours()


@lru_cache(maxsize=1)
def zone_names() -> frozenset[str]:
    # "localtime" and "posixrules" would mean whatever the server's files say.
    return frozenset(available_timezones()) - {"localtime", "posixrules", "Factory"}


def check_timezone(name: str) -> str:
    """The IANA name, or ValueError."""
    if not isinstance(name, str) or name not in zone_names():
        raise ValueError("timezone: not an IANA time zone name (e.g. Europe/Berlin)")
    return name


def check_schedule(intervals: Iterable[Interval], closed_days: Iterable[date] = ()) -> None:
    """ValueError naming what is wrong: too many rows, a bad weekday, or intervals that overlap
    (on a circular week, so an overnight interval may not run into the next day's first one)."""
    intervals = list(intervals)
    if len(intervals) > MAX_INTERVALS:
        raise ValueError(f"schedule: at most {MAX_INTERVALS} intervals")
    if len(set(closed_days)) > MAX_CLOSED_DAYS:
        raise ValueError(f"closed_days: at most {MAX_CLOSED_DAYS} dates")
    spans = []
    for interval in intervals:
        if not 0 <= interval.weekday <= 6:
            raise ValueError("schedule: weekday is 0 (Monday) to 6 (Sunday)")
        if interval.opens.second or interval.closes.second or interval.opens.microsecond or interval.closes.microsecond:
            raise ValueError("schedule: times are whole minutes (HH:MM)")
        opens = interval.opens.hour * 60 + interval.opens.minute
        length = (interval.closes.hour * 60 + interval.closes.minute - opens) % 1440 or 1440
        start = interval.weekday * 1440 + opens
        spans.append((start, start + length, interval))
    spans.sort(key=lambda span: span[0])
    for (start, end, interval), (next_start, _, following) in zip(spans, spans[1:] + spans[:1]):
        if following is interval:
            continue
        if next_start < start:
            next_start += WEEK_MINUTES  # the week wraps: Sunday night into Monday
        if end > next_start:
            raise ValueError(f"schedule: {interval} overlaps {following}")


def _openings(hours: Hours, zone: ZoneInfo, first: date, days: int) -> Iterator[tuple[datetime, datetime]]:
    """(opens, closes) in UTC of the intervals starting on `days` local dates from `first`, in order."""
    by_weekday: dict[int, list[Interval]] = {}
    for interval in sorted(hours.intervals, key=lambda interval: interval.opens):
        by_weekday.setdefault(interval.weekday, []).append(interval)
    for offset in range(days):
        day = first + timedelta(days=offset)
        if day in hours.closed_days:
            continue
        for interval in by_weekday.get(day.weekday(), ()):
            closing_day = day + timedelta(days=1) if interval.overnight else day
            yield (datetime.combine(day, interval.opens, tzinfo=zone).astimezone(UTC),
                   datetime.combine(closing_day, interval.closes, tzinfo=zone).astimezone(UTC))


def is_open(hours: Hours, now: datetime) -> bool:
    """Whether the shop is open at `now` (an aware datetime)."""
    if hours.always_open:
        return True
    zone = ZoneInfo(hours.timezone)
    yesterday = now.astimezone(zone).date() - timedelta(days=1)  # an overnight interval may still run
    return any(opens <= now < closes for opens, closes in _openings(hours, zone, yesterday, 2))


def next_opening(hours: Hours, now: datetime) -> datetime | None:
    """When a shop closed at `now` opens next (UTC); None when it is open now, or opens on no day
    of the next year and more."""
    if is_open(hours, now):
        return None
    zone = ZoneInfo(hours.timezone)
    today = now.astimezone(zone).date()
    return next((opens for opens, _ in _openings(hours, zone, today, SEARCH_DAYS) if opens > now), None)


def describe_moment(moment: datetime, timezone: str) -> str:
    """A moment as the shop's people say it: "Mon 7 Dec 09:00 (Europe/Berlin)"."""
    local = moment.astimezone(ZoneInfo(timezone))
    return f"{WEEKDAYS[local.weekday()]} {local.day} {local:%b %H:%M} ({timezone})"


def hours_payload(hours: Hours, now: datetime) -> dict:
    """What a client shows: open now, the next opening (unix seconds, or null), the weekly intervals."""
    opens = next_opening(hours, now)
    return {
        "timezone": hours.timezone,
        "open_now": is_open(hours, now),
        "next_opening": int(opens.timestamp()) if opens else None,
        "always_open": hours.always_open,
        "schedule": [{"weekday": interval.weekday, "opens": f"{interval.opens:%H:%M}",
                      "closes": f"{interval.closes:%H:%M}"}
                     for interval in sorted(hours.intervals, key=lambda interval: (interval.weekday, interval.opens))],
    }
