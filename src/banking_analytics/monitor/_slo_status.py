"""An SLO's standing at a moment: each instance's burn rate over each window, which window
pairs burn, and the error budget left over the period (definitions in :mod:`._slo`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from banking_analytics.analytics import Shape
from banking_analytics.metrics import MetricService
from banking_analytics.monitor._durations import format_duration
from banking_analytics.monitor._slo import Counts, Slo, pair_burns
from banking_analytics.monitor._store import Labels, StoredInstance, StoredRule

__all__ = ["BurnPairView", "SloInstanceView", "SloStatus", "SloWindowView", "slo_view"]


@dataclass(slots=True, eq=False)
class BurnPairView(Shape):
    """A window pair of the SLO's alerts and the burn rate above which it breaches."""

    long_window: str
    short_window: str
    #: The share of the period's error budget spent within the long window at the threshold.
    budget_fraction: float
    #: budget_fraction x period ÷ long window.
    burn_rate_threshold: float
    #: critical (page) or warning (ticket).
    severity: str


@dataclass(slots=True, eq=False)
class SloWindowView(Shape):
    """The SLI over one trailing window."""

    window: str
    events: int
    #: Bad events; null below the metric's own minimum sample.
    bad_events: int | None
    #: (bad ÷ events) ÷ (1 - objective); null without a figure.
    burn_rate: float | None


@dataclass(slots=True, eq=False)
class SloInstanceView(Shape):
    """One label set of an SLO: its budget over the period, its burn over each window."""

    labels: dict[str, str]
    #: Events (the SLI's denominator) over the period.
    events: int
    bad_events: int | None
    #: Budget spent over the period: its burn rate over the whole period (1 = all of it).
    budget_consumed: float | None
    #: 1 - budget_consumed (negative once overspent); null below the minimum events.
    budget_remaining: float | None
    windows: list[SloWindowView]
    #: For each pair of ``burn_rates``' order: whether both its windows burn above its
    #: threshold; null when either has fewer than the minimum events.
    burning: list[bool | None]
    #: The burn-rate alert's state as last evaluated (inactive when never evaluated).
    alert_state: str
    alert_severity: str | None


@dataclass(slots=True, eq=False)
class SloStatus(Shape):
    """An SLO's current version and its standing at ``evaluated_at``."""

    name: str
    version: int
    #: The SLO as written (YAML/JSON).
    definition: dict[str, Any]
    #: 1 - objective: the share of events that may be bad.
    error_budget: float
    burn_rates: list[BurnPairView]
    evaluated_at: datetime
    #: Each label set with events over the period (up to the page size asked).
    instances: list[SloInstanceView]


def slo_view(
    stored: StoredRule,
    metrics: MetricService,
    alerts: Mapping[Labels, StoredInstance],
    now: datetime,
    limit: int,
) -> SloStatus:
    """An SLO's current version with its standing at ``now``: the first ``limit`` label sets."""
    slo = stored.rule
    assert isinstance(slo, Slo)
    windows = (*slo.windows, slo.period)
    counts, _ = slo.counts(metrics, now, windows)
    return SloStatus(
        stored.name,
        stored.version,
        slo.as_dict(),
        slo.budget,
        [
            BurnPairView(
                format_duration(pair.long),
                format_duration(pair.short),
                pair.budget_fraction,
                factor,
                pair.severity.value,
            )
            for pair, factor in slo.factors()
        ],
        now,
        [
            _instance(slo, labels, by_window, alerts.get(labels))
            for labels, by_window in sorted(counts.items())[:limit]
        ],
    )


def _instance(
    slo: Slo,
    labels: Labels,
    by_window: Mapping[timedelta, Counts],
    alert: StoredInstance | None,
) -> SloInstanceView:
    nothing = Counts(0, 0)
    period = by_window.get(slo.period, nothing)
    consumed = period.burn_rate(slo.budget)
    if period.total < slo.effective_min_events:
        consumed = None
    return SloInstanceView(
        dict(labels),
        period.total,
        period.bad,
        consumed,
        None if consumed is None else 1 - consumed,
        [
            SloWindowView(
                format_duration(window),
                by_window.get(window, nothing).total,
                by_window.get(window, nothing).bad,
                by_window.get(window, nothing).burn_rate(slo.budget),
            )
            for window in slo.windows
        ],
        [pair_burns(slo, pair, factor, by_window) for pair, factor in slo.factors()],
        "inactive" if alert is None else alert.state.state.value,
        None if alert is None or alert.state.severity is None else alert.state.severity.value,
    )
