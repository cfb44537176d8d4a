"""Time windows and buckets: what span a metric covers and how it is cut."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from zoneinfo import available_timezones

__all__ = [
    "TIME_PERIODS",
    "Bucket",
    "QueryError",
    "TimeWindow",
    "check_timezone",
    "parse_time_period",
    "restrict_timezones",
]

#: The named periods the spec's ``time_period`` argument takes, ending now.
TIME_PERIODS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}

# [0-9], not \d: \d also matches other scripts' digits ("٣d"), which int() reads.
_PERIOD = re.compile(r"^([0-9]{1,4})([hd])$")
#: The longest window a query may span: the store keeps at most five years.
MAX_WINDOW = timedelta(days=1830)


class QueryError(ValueError):
    """A metric query that cannot be answered as asked; the message says which part."""


class Bucket(StrEnum):
    """How a time series is cut: fixed-width buckets, or calendar months, quarters and years."""

    MINUTE = "minute"
    QUARTER_HOUR = "15min"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"

    @property
    def is_calendar(self) -> bool:
        """Whether the bucket is a calendar month, quarter or year, of varying length."""
        return self not in _WIDTHS

    @property
    def width(self) -> timedelta:
        """The nominal width of a fixed-width bucket (a day in a zone that changes its
        clocks lasts 23 or 25 hours: its end is :func:`bucket_end`'s to give)."""
        try:
            return _WIDTHS[self]
        except KeyError:
            raise TypeError(f"a {self.value} bucket has no fixed width") from None


_WIDTHS = {
    Bucket.MINUTE: timedelta(minutes=1),
    Bucket.QUARTER_HOUR: timedelta(minutes=15),
    Bucket.HOUR: timedelta(hours=1),
    Bucket.DAY: timedelta(days=1),
    Bucket.WEEK: timedelta(weeks=1),
}


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The half-open span ``[start, end)`` in UTC, with the label it was asked by."""

    start: datetime
    end: datetime
    label: str = "custom"

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value: datetime = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                raise QueryError(f"{name} must be timezone-aware, got {value.isoformat()}")
            object.__setattr__(self, name, value.astimezone(UTC))
        if self.end <= self.start:
            raise QueryError(
                f"end ({self.end.isoformat()}) must be after start ({self.start.isoformat()})"
            )
        if self.length > MAX_WINDOW:
            raise QueryError(f"a window may span at most {MAX_WINDOW.days} days")

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    @property
    def days(self) -> float:
        return self.length / timedelta(days=1)

    def previous(self) -> TimeWindow:
        """The window of the same length just before this one (for period comparison)."""
        return TimeWindow(self.start - self.length, self.start, f"previous {self.label}")

    def as_dict(self) -> dict[str, str]:
        return {"label": self.label, "start": self.start.isoformat(), "end": self.end.isoformat()}


def parse_time_period(period: str | TimeWindow, now: datetime | None = None) -> TimeWindow:
    """``"24h"``, ``"7d"``, ... (any ``<n>h`` or ``<n>d``) ending at ``now``, or a window as is.

    Without ``now`` the window ends at the next whole minute: it holds every event
    so far, and calls within the same minute ask the same question, so they share
    cached answers (a new event still changes them: it changes the data version).
    """
    if isinstance(period, TimeWindow):
        return period
    match = _PERIOD.match(period.strip())
    if not match:
        raise QueryError(
            f"time_period {period!r} is not understood; use one of "
            f"{', '.join(TIME_PERIODS)} (or any <n>h / <n>d)"
        )
    count, unit = int(match[1]), match[2]
    length = timedelta(hours=count) if unit == "h" else timedelta(days=count)
    if length <= timedelta(0):
        raise QueryError(f"time_period {period!r} must be longer than zero")
    end = now if now is not None else _next_minute(datetime.now(UTC))
    return TimeWindow(end - length, end, period.strip())


def _next_minute(at: datetime) -> datetime:
    whole = at.replace(second=0, microsecond=0)
    return whole if whole == at else whole + timedelta(minutes=1)


#: Files of the tz database that are no zone: ``localtime`` is whatever the machine is set to.
_NOT_ZONES = frozenset({"localtime", "posixrules"})


@cache
def _known_timezones() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_ZONES


#: Names Python knows but an engine in use does not (its tz database is older, say).
_REFUSED_BY_ENGINES: set[str] = set()


def restrict_timezones(engine_names: Iterable[str]) -> frozenset[str]:
    """Accept from now on only names this engine's tz database knows too; called once per
    engine at start-up, so the accepted list is what every engine in use agrees on.
    Answers the names refused because of this engine."""
    refused = _known_timezones() - frozenset(engine_names) - {"UTC"}
    _REFUSED_BY_ENGINES.update(refused)
    return refused


def check_timezone(name: str) -> str:
    """An IANA timezone name, checked against the tz database (it is rendered into SQL)
    and against every engine's in use (see :func:`restrict_timezones`)."""
    if name == "UTC":
        return name
    if name not in _known_timezones():
        raise QueryError(f"timezone {name!r} is not an IANA timezone name, e.g. Europe/London")
    if name in _REFUSED_BY_ENGINES:
        raise QueryError(f"timezone {name!r} is not known to the store's engine; use another name")
    return name
