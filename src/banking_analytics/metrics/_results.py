"""What a metric query answers: one row per bucket x dimension values, a value per metric."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from banking_analytics.metrics._model import Metric
from banking_analytics.metrics._query import MetricQuery

__all__ = ["MetricValue", "QueryResult", "ResultRow", "Status"]


class Status(StrEnum):
    OK = "ok"
    #: Fewer events than the metric's minimum sample: no number is given.
    INSUFFICIENT_DATA = "insufficient_data"


#: Each status as plain text, looked up rather than read through the enum (results are
#: turned into JSON by the thousand).
_TEXT = {status: status.value for status in Status}


class MetricValue(NamedTuple):
    """A figure, the sample it rests on, and whether it is trustworthy enough to show.

    A named tuple rather than a frozen dataclass: results hold thousands, and a
    tuple is several times cheaper to make.
    """

    value: float | int | datetime | None
    sample_size: int | None
    status: Status

    def as_dict(self) -> dict[str, Any]:
        value = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        return {"value": value, "sample_size": self.sample_size, "status": _TEXT[self.status]}


@dataclass(slots=True)
class ResultRow:
    """One bucket x dimension values. Not frozen: results are made by the thousand, and a
    frozen dataclass costs three times as much to make."""

    bucket: datetime | None
    dimensions: dict[str, str | None]
    values: dict[str, MetricValue]
    #: The same figures over the previous period, when a comparison was asked for.
    previous: dict[str, MetricValue] | None = None

    def __getitem__(self, metric: str) -> float | int | datetime | None:
        return self.values[metric].value

    def number(self, metric: str) -> float | None:
        """A numeric figure (None when there is none)."""
        value = self.values[metric].value
        if isinstance(value, datetime):
            raise TypeError(f"{metric} is a time, not a number")
        return None if value is None else float(value)

    def count(self, metric: str) -> int:
        """A count (zero when there is none)."""
        return int(self.number(metric) or 0)


def _iso(bucket: datetime | None, zone: ZoneInfo | None) -> str | None:
    """A bucket's start in the query's timezone (buckets are UTC already)."""
    if bucket is None:
        return None
    return (bucket if zone is None else bucket.astimezone(zone)).isoformat()


@dataclass(frozen=True, slots=True)
class QueryResult:
    query: MetricQuery
    rows: tuple[ResultRow, ...]
    #: How many of the statements were answered from the cache.
    cached: int

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return self.query.metrics

    def single(self) -> ResultRow:
        """The only row of a query with no bucket and no dimensions."""
        if len(self.rows) != 1:
            raise ValueError(f"expected one row, the query has {len(self.rows)}")
        return self.rows[0]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO-8601 in the query's timezone."""
        zone = None if self.query.timezone == "UTC" else ZoneInfo(self.query.timezone)
        return {
            "window": self.query.window.as_dict(),
            "bucket": self.query.bucket.value if self.query.bucket else None,
            "timezone": self.query.timezone,
            "dimensions": list(self.query.dimensions),
            "metrics": [
                {"name": m.name, "unit": m.unit.value, "higher_is_better": m.higher_is_better}
                for m in self.metrics
            ],
            "rows": [
                {
                    "bucket": _iso(row.bucket, zone),
                    "dimensions": row.dimensions,
                    "values": {name: v.as_dict() for name, v in row.values.items()},
                    **(
                        {"previous": {n: v.as_dict() for n, v in row.previous.items()}}
                        if row.previous is not None
                        else {}
                    ),
                }
                for row in self.rows
            ],
        }
