"""Anomaly detection: each bucket of a metric's series against the same time of week.

A rule with ``condition: anomaly`` asks the metric layer for its metric bucketed
by its ``window`` (``15m``, ``1h`` or ``1d``), per label set, over the last
``weeks`` weeks and the buckets it judges; nothing but the bucketed figures
comes into Python. Only complete buckets are judged: at ``now`` the latest is
the one that ends at or before ``now``.

For a bucket starting at t with figure x, the **baseline** is the same bucket
of each of the previous ``weeks`` weeks (t - 7 d, t - 14 d, ...), those with a
figure (each bucket with at least the rule's minimum sample). With fewer than
``min_weeks`` of them the bucket is not judged. Then, with ``median`` and
``MAD`` = median(|b - median|) of the baseline,

    z = 0.6745 · (x - median) / max(MAD, floor),   floor = max(min_mad, 0.01·|median|, 1e-6)

(Iglewicz and Hoaglin's modified z-score; 0.6745 makes MAD comparable to a
standard deviation for normal data). The **floor** keeps a flat baseline (every
week the same figure, so MAD = 0) from turning the smallest wiggle into an
infinite score: a move of 1% of the median scores 0.67. A baseline at exactly 0
(an error rate that is always 0) falls back to 1e-6, so any error at all is
anomalous; raise ``min_mad`` (in the metric's unit) to tolerate some.

A bucket is **anomalous** when z < -sensitivity (``direction: down``),
z > sensitivity (``up``) or |z| > sensitivity (``both``). The instance reads:

* ``nodata`` when none of its last max(n, r) buckets could be judged;
* ``breach`` (at the rule's ``severity``) when at least ``trigger_count`` of
  its last ``trigger_window`` (n) buckets are anomalous;
* ``breach`` also while it is firing and any of its last ``recovery_window``
  (r) buckets is anomalous or unjudged: it recovers only after r judged,
  normal buckets in a row (Datadog's recovery window);
* ``ok`` otherwise.

Its value is the most extreme z of its last n buckets in the rule's direction.
These readings then go through the same state machine (``for``,
``keep_firing_for``) as a threshold rule's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np

from banking_analytics.metrics import Bucket, MetricQuery, QueryResult, TimeWindow

__all__ = [
    "ANOMALY_BUCKETS",
    "AnomalySpec",
    "Direction",
    "modified_z",
    "series_of",
]

#: The buckets an anomaly rule may judge, by its ``window``.
ANOMALY_BUCKETS = {
    timedelta(minutes=15): Bucket.QUARTER_HOUR,
    timedelta(hours=1): Bucket.HOUR,
    timedelta(days=1): Bucket.DAY,
}
_WEEK = timedelta(weeks=1)
#: z = 0.6745·(x - median)/MAD: MAD x 1.4826 estimates a normal standard deviation.
_CONSISTENCY = 0.6745
_RELATIVE_FLOOR = 0.01
_ABSOLUTE_FLOOR = 1e-6
_MAX_WEEKS = 8
_MAX_BUCKETS_JUDGED = 48
_FIELDS = (
    "direction",
    "sensitivity",
    "weeks",
    "min_weeks",
    "trigger_count",
    "trigger_window",
    "recovery_window",
    "min_mad",
)


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"
    BOTH = "both"


def modified_z(value: float, baseline: np.ndarray[Any, Any], min_mad: float = 0.0) -> float:
    """0.6745·(value - median)/max(MAD, floor) of a baseline (see the module)."""
    median = float(np.median(baseline))
    mad = float(np.median(np.abs(baseline - median)))
    floor = max(min_mad, _RELATIVE_FLOOR * abs(median), _ABSOLUTE_FLOOR)
    return _CONSISTENCY * (value - median) / max(mad, floor)


#: A problem with an ``anomaly`` mapping: (the key at fault, or None for all of it; what).
AnomalyProblem = tuple[str | None, str]


@dataclass(frozen=True, slots=True)
class AnomalySpec:
    """An anomaly rule's detector (see the module)."""

    direction: Direction = Direction.BOTH
    sensitivity: float = 3.5
    weeks: int = 4
    min_weeks: int = 2
    trigger_count: int = 2
    trigger_window: int = 3
    recovery_window: int = 2
    min_mad: float = 0.0

    @property
    def judged(self) -> int:
        """How many of the latest buckets a reading looks at."""
        return max(self.trigger_window, self.recovery_window)

    def as_dict(self) -> dict[str, Any]:
        """The detector as written (defaults left out)."""
        default = AnomalySpec()
        return {
            name: (value.value if isinstance(value, Direction) else value)
            for name in _FIELDS
            if (value := getattr(self, name)) != getattr(default, name)
        }

    @classmethod
    def parse(cls, data: object) -> tuple[AnomalySpec, list[AnomalyProblem]]:
        """The detector from its written form, and every problem found in it."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            return cls(), [(None, f"a mapping of {', '.join(_FIELDS)}")]
        problems: list[AnomalyProblem] = [
            (str(key), f"unknown field; fields are {', '.join(_FIELDS)}")
            for key in data
            if key not in _FIELDS
        ]
        default = cls()

        def whole(key: str, low: int, high: int) -> int:
            value = data.get(key, getattr(default, key))
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                problems.append((key, f"a whole number from {low} to {high}, got {value!r}"))
                return int(getattr(default, key))
            return value

        def number(key: str, low: float, high: float) -> float:
            value = data.get(key, getattr(default, key))
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not low <= value <= high
            ):
                problems.append((key, f"a number from {low:g} to {high:g}, got {value!r}"))
                return float(getattr(default, key))
            return float(value)

        direction = Direction.BOTH
        try:
            direction = Direction(data.get("direction", Direction.BOTH.value))
        except ValueError:
            problems.append(
                ("direction", f"one of {', '.join(Direction)}, got {data.get('direction')!r}")
            )
        weeks = whole("weeks", 1, _MAX_WEEKS)
        spec = cls(
            direction=direction,
            sensitivity=number("sensitivity", 0.5, 100.0),
            weeks=weeks,
            min_weeks=whole("min_weeks", 1, _MAX_WEEKS),
            trigger_count=whole("trigger_count", 1, _MAX_BUCKETS_JUDGED),
            trigger_window=whole("trigger_window", 1, _MAX_BUCKETS_JUDGED),
            recovery_window=whole("recovery_window", 1, _MAX_BUCKETS_JUDGED),
            min_mad=number("min_mad", 0.0, 1e12),
        )
        if spec.min_weeks > spec.weeks:
            problems.append(("min_weeks", f"at most weeks ({spec.weeks})"))
        if spec.trigger_count > spec.trigger_window:
            problems.append(("trigger_count", f"at most trigger_window ({spec.trigger_window})"))
        return spec, problems

    def queries(
        self,
        metric: str,
        width: timedelta,
        dimensions: tuple[str, ...],
        filters: Mapping[str, tuple[str, ...]],
        now: datetime,
    ) -> list[MetricQuery]:
        """The bucketed queries of an evaluation at ``now``: the judged buckets (the latest
        ending at or before ``now``), then the same buckets 1, 2, ... ``weeks`` weeks
        before. Only the buckets compared are asked for (``weeks + 1`` short series, each
        cached by the metric layer), not the weeks between them."""
        end = _floor(now, width)
        span = self.judged * width
        return [
            MetricQuery.build(
                [metric],
                TimeWindow(end - span - week * _WEEK, end - week * _WEEK),
                dimensions=dimensions,
                bucket=ANOMALY_BUCKETS[width],
                filters=dict(filters),
            )
            for week in range(self.weeks + 1)
        ]

    def scores(
        self, series: Mapping[datetime, float], width: timedelta, now: datetime
    ) -> list[float | None]:
        """The z-score of each judged bucket, oldest first (None: not judged)."""
        end = _floor(now, width)
        found: list[float | None] = []
        for i in range(self.judged, 0, -1):
            start = end - i * width
            value = series.get(start)
            baseline = [
                b
                for week in range(1, self.weeks + 1)
                if (b := series.get(start - week * _WEEK)) is not None
            ]
            if value is None or len(baseline) < self.min_weeks:
                found.append(None)
            else:
                found.append(modified_z(value, np.array(baseline), self.min_mad))
        return found

    def is_anomalous(self, z: float | None) -> bool:
        if z is None:
            return False
        if self.direction is Direction.DOWN:
            return z < -self.sensitivity
        if self.direction is Direction.UP:
            return z > self.sensitivity
        return abs(z) > self.sensitivity

    def verdict(self, scores: list[float | None], firing: bool) -> tuple[str, float | None]:
        """``breach``, ``ok`` or ``nodata`` for an instance's judged scores (see the module),
        and its value: the most extreme score of the trigger window in the direction."""
        if all(z is None for z in scores):
            return "nodata", None
        window = [z for z in scores[-self.trigger_window :] if z is not None]
        value = _extreme(window, self.direction)
        anomalous = sum(self.is_anomalous(z) for z in scores[-self.trigger_window :])
        if anomalous >= self.trigger_count:
            return "breach", value
        recent = scores[-self.recovery_window :]
        if firing and not all(z is not None and not self.is_anomalous(z) for z in recent):
            return "breach", value
        return "ok", value


def _extreme(scores: list[float], direction: Direction) -> float | None:
    if not scores:
        return None
    if direction is Direction.DOWN:
        return min(scores)
    if direction is Direction.UP:
        return max(scores)
    return max(scores, key=abs)


def _floor(now: datetime, width: timedelta) -> datetime:
    """The start of the UTC bucket of ``width`` holding ``now`` (buckets count from the epoch,
    as the engines cut them)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((now - epoch) // width) * width


def series_of(
    results: Sequence[QueryResult],
    metric: str,
    dimensions: tuple[str, ...],
    min_sample: int,
) -> dict[tuple[tuple[str, str], ...], dict[datetime, float]]:
    """Each label set's bucketed figures from the results of :meth:`AnomalySpec.queries`
    (buckets without a figure, or on fewer than ``min_sample`` events, left out)."""
    found: dict[tuple[tuple[str, str], ...], dict[datetime, float]] = {}
    for row in (row for result in results for row in result.rows):
        labels = tuple(sorted((dim, row.dimensions[dim] or "") for dim in dimensions))
        points = found.setdefault(labels, {})
        figure = row.values[metric]
        thin = figure.sample_size is not None and figure.sample_size < min_sample
        if isinstance(figure.value, int | float) and row.bucket is not None and not thin:
            points[row.bucket] = float(figure.value)
    return found
