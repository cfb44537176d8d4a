"""The filter bar's values, read from a page's URL: what every dashboard is cut by.

A dashboard's URL holds its whole question (``?period=7d&aggregator=plaid``), so a
link pasted into a chat opens the same view and the back button restores the last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from banking_analytics.metrics import TIME_PERIODS, QueryError, TimeWindow, parse_time_period
from banking_analytics.vocabulary import Aggregator, BankingFeature

__all__ = ["CUSTOM", "TIMEZONES", "FilterError", "Filters"]

#: The ``period`` of a window given by ``start`` and ``end`` dates.
CUSTOM = "custom"
#: The zones offered in the filter bar; any IANA name the store's engine knows is accepted.
TIMEZONES = ("UTC", "America/New_York", "America/Los_Angeles", "Europe/London", "Europe/Berlin")
_INSTITUTION_MAX = 128
#: What the event schema accepts as an institution id.
_IDENTIFIER = re.compile(rf"[A-Za-z0-9_.:@+=/\-]{{1,{_INSTITUTION_MAX}}}")
_FEATURES = frozenset(f.value for f in BankingFeature)
_AGGREGATORS = frozenset(a.value for a in Aggregator)


class FilterError(ValueError):
    """A filter value that cannot be used; the message names the parameter."""


@dataclass(frozen=True, slots=True)
class Filters:
    """A dashboard's time window and cuts. ``start`` and ``end`` (dates, both included) are
    read in ``timezone`` when ``period`` is :data:`CUSTOM`."""

    period: str = "24h"
    start: date | None = None
    end: date | None = None
    feature: str | None = None
    institution: str | None = None
    aggregator: str | None = None
    timezone: str = "UTC"

    @classmethod
    def read(cls, query: dict[str, str]) -> Filters:
        """Filters from query parameters; :class:`FilterError` for a value that is not valid."""
        values = {key: value.strip() for key, value in query.items() if value.strip()}
        period = values.get("period", "24h")
        feature = values.get("feature")
        aggregator = values.get("aggregator")
        institution = values.get("institution")
        timezone = values.get("timezone", "UTC")
        if period != CUSTOM and period not in TIME_PERIODS:
            raise FilterError(f"period: {period!r} is not one of {', '.join(TIME_PERIODS)}, custom")
        if feature is not None and feature not in _FEATURES:
            raise FilterError(f"feature: {feature!r} is not a banking feature")
        if aggregator is not None and aggregator not in _AGGREGATORS:
            raise FilterError(f"aggregator: {aggregator!r} is not an aggregator")
        if institution is not None and not _IDENTIFIER.fullmatch(institution):
            raise FilterError(
                f"institution: {institution[:_INSTITUTION_MAX]!r} is not an institution id"
            )
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise FilterError(f"timezone: {timezone!r} is not an IANA timezone") from None
        start = end = None
        if period == CUSTOM:
            start, end = _date(values, "start"), _date(values, "end")
            if end < start:
                raise FilterError("end: the custom range ends before it starts")
        filters = cls(period, start, end, feature, institution, aggregator, timezone)
        filters.window()  # a custom range longer than the engine allows is refused now
        return filters

    def window(self, now: datetime | None = None) -> TimeWindow:
        """The window asked for: the period ending now, or whole days in the timezone."""
        if self.start is None or self.end is None:
            return parse_time_period(self.period, now)
        zone = ZoneInfo(self.timezone)
        start = datetime.combine(self.start, time(), zone)
        end = datetime.combine(self.end + timedelta(days=1), time(), zone)
        try:
            return TimeWindow(start, end, f"{self.start} to {self.end}")
        except QueryError as exc:
            raise FilterError(f"start/end: {exc}") from None

    def metric_filters(self) -> dict[str, str]:
        """The cuts as metric-layer filters."""
        cuts = {
            "feature": self.feature,
            "institution": self.institution,
            "aggregator": self.aggregator,
        }
        return {name: value for name, value in cuts.items() if value is not None}

    def query_string(self, **overrides: str | None) -> str:
        """The URL query of these filters (defaults left out), with some values replaced."""
        values: dict[str, str | None] = {
            "period": self.period,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "feature": self.feature,
            "institution": self.institution,
            "aggregator": self.aggregator,
            "timezone": self.timezone,
        }
        values.update(overrides)
        defaults = {"period": "24h", "timezone": "UTC"}
        kept = {k: v for k, v in values.items() if v is not None and defaults.get(k) != v}
        return urlencode(kept)


def _date(values: dict[str, str], name: str) -> date:
    if name not in values:
        raise FilterError(f"{name}: a custom range needs a start and an end date")
    try:
        return date.fromisoformat(values[name])
    except ValueError:
        raise FilterError(f"{name}: {values[name]!r} is not a date (YYYY-MM-DD)") from None
