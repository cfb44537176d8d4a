"""Service level objectives and their error-budget burn-rate alerts (the SRE workbook's
multi-window, multi-burn-rate alerts).

An SLO names a rate of the metric catalogue as its SLI (a ratio of counts over
the same events: ``connection_success_rate`` is successes ÷ the bank-health
attempts), an ``objective`` (e.g. 0.995 of events good) and a ``period``
(default 30 days). Where the rate measures good events (``higher_is_better``)
an event is bad when it is not good; an error rate counts the bad ones itself.

* **Error budget**: ``1 - objective``, the share of events that may be bad.
* **Burn rate** over a window: ``(bad ÷ total) ÷ (1 - objective)``; burning at 1x
  spends exactly the budget over the period.
* **Budget consumed** over the period: its burn rate over the whole period;
  **remaining**: ``1 - consumed`` (negative once overspent).

Each alert window pair spends a fraction of the period's budget within its long
window: a burn rate above ``fraction x period ÷ long window`` over **both** the
long and the short window (a twelfth of it, so the alert stops soon after the
burn does) breaches. For a 30-day period (the workbook's table 5-8):

======  =======  ===========  ==========  =========
long    short    budget spent  burn rate   severity
======  =======  ===========  ==========  =========
1h      5m       2%            14.4x       critical (page)
6h      30m      5%            6x          critical (page)
1d      2h       10%           3x          warning (ticket)
3d      6h       10%           1x          warning (ticket)
======  =======  ===========  ==========  =========

One alert instance per label set of ``by``, at the most severe level a pair
breaches. A window with fewer events than the minimum (``min_events``, at least
the metric's own minimum sample) tells nothing: a pair with such a window is
not judged, and an instance with no pair judged has no data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from banking_analytics.metrics import (
    CATALOG,
    MetricQuery,
    MetricService,
    QueryResult,
    Ratio,
    TimeWindow,
    Unit,
)
from banking_analytics.monitor._durations import format_duration
from banking_analytics.monitor._rules import (
    _NAME,
    RuleError,
    Severity,
    _Checker,
    written_timing,
)
from banking_analytics.monitor._state import Observation, Reading

__all__ = [
    "BURN_WINDOWS",
    "BurnWindow",
    "Counts",
    "Slo",
    "burn_reading",
    "counts_of",
    "pair_burns",
]

_HOUR = timedelta(hours=1)
_FIELDS = (
    "name",
    "sli",
    "objective",
    "period",
    "by",
    "filters",
    "min_events",
    "for",
    "keep_firing_for",
    "interval",
    "labels",
    "annotations",
)


@dataclass(frozen=True, slots=True)
class BurnWindow:
    """A window pair: it breaches when more than ``budget_fraction`` of the period's budget
    would be spent within ``long`` at the burn rate of both ``long`` and ``short``."""

    long: timedelta
    short: timedelta
    budget_fraction: float
    severity: Severity

    def factor(self, period: timedelta) -> float:
        """The burn-rate threshold: ``budget_fraction x period ÷ long`` (14.4 for 2% of
        a 30-day budget in an hour)."""
        return round(self.budget_fraction * (period / self.long), 9)


#: The SRE workbook's window pairs, most urgent first.
BURN_WINDOWS = (
    BurnWindow(_HOUR, timedelta(minutes=5), 0.02, Severity.CRITICAL),
    BurnWindow(6 * _HOUR, timedelta(minutes=30), 0.05, Severity.CRITICAL),
    BurnWindow(24 * _HOUR, 2 * _HOUR, 0.10, Severity.WARNING),
    BurnWindow(72 * _HOUR, 6 * _HOUR, 0.10, Severity.WARNING),
)
#: The highest objective: its budget, 1 - objective, must stay a number to divide by.
MAX_OBJECTIVE = 0.999999
#: The shortest period: the longest window pair must fit in it.
MIN_PERIOD = max(w.long for w in BURN_WINDOWS)


@dataclass(frozen=True, slots=True)
class Counts:
    """The SLI's events over one window: how many, and how many bad (None when the metric
    gives no figure: fewer events than its own minimum sample)."""

    total: int
    bad: int | None

    def burn_rate(self, budget: float) -> float | None:
        """``(bad ÷ total) ÷ budget``; None without events or a figure."""
        if self.bad is None or self.total == 0:
            return None
        return self.bad / self.total / budget


def sli_metric_problem(name: str) -> str | None:
    """Why a catalogue metric cannot be an SLI (None when it can): it must be a rate
    of counts over the same events, saying which way is good."""
    metric = CATALOG.get(name)
    if metric is None:
        return f"unknown metric {name!r}; see GET .../metrics"
    if (
        not isinstance(metric.measure, Ratio)
        or metric.unit is not Unit.RATIO
        or metric.higher_is_better is None
    ):
        rates = sorted(
            m.name
            for m in CATALOG.values()
            if isinstance(m.measure, Ratio)
            and m.unit is Unit.RATIO
            and m.higher_is_better is not None
        )
        return f"{name} is not a rate of good (or bad) events; one of {', '.join(rates)}"
    return None


@dataclass(frozen=True, slots=True)
class Slo:
    """A service level objective (see the module). Build it with :meth:`from_dict`."""

    name: str
    sli: str
    objective: float
    period: timedelta = timedelta(days=30)
    by: tuple[str, ...] = ()
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()
    min_events: int = 0
    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    interval: timedelta = timedelta(minutes=1)
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    @property
    def budget(self) -> float:
        """The error budget, ``1 - objective`` (rounded: 1 - 0.999 is 0.001, not 0.00100…09)."""
        return round(1 - self.objective, 12)

    @property
    def effective_min_events(self) -> int:
        """The events below which a window tells nothing: the SLO's, at least the metric's."""
        return max(self.min_events, CATALOG[self.sli].min_sample)

    @property
    def windows(self) -> tuple[timedelta, ...]:
        """Every window an evaluation reads, shortest first."""
        return tuple(sorted({w for pair in BURN_WINDOWS for w in (pair.long, pair.short)}))

    def factors(self) -> list[tuple[BurnWindow, float]]:
        """Each window pair with its burn-rate threshold for this SLO's period."""
        return [(pair, pair.factor(self.period)) for pair in BURN_WINDOWS]

    def threshold_of(self, severity: Severity | None) -> float | None:
        """The slowest burn that raises ``severity`` (its pairs' smallest threshold)."""
        found = [f for pair, f in self.factors() if pair.severity is severity]
        return min(found) if found else None

    def query(self, now: datetime, window: timedelta) -> MetricQuery:
        """The SLI over ``[now - window, now)``, cut and filtered as the SLO says."""
        return MetricQuery.build(
            [self.sli],
            TimeWindow(now - window, now, format_duration(window)),
            dimensions=self.by,
            filters=dict(self.filters),
        )

    def counts(
        self,
        metrics: MetricService,
        now: datetime,
        windows: Sequence[timedelta],
        versions: Mapping[str, int] | None = None,
    ) -> tuple[dict[tuple[tuple[str, str], ...], dict[timedelta, Counts]], int]:
        """Each label set's counts over each window ending at ``now`` (a window without
        events left out), and how many statements the metric cache answered."""
        found: dict[tuple[tuple[str, str], ...], dict[timedelta, Counts]] = {}
        cached = 0
        for window in windows:
            result = metrics.run(self.query(now, window), versions=versions)
            cached += result.cached
            for labels, counts in counts_of(self, result).items():
                found.setdefault(labels, {})[window] = counts
        return found, cached

    def as_dict(self) -> dict[str, Any]:
        """The SLO as written in YAML or JSON (defaults left out)."""
        written: dict[str, Any] = {
            "name": self.name,
            "sli": self.sli,
            "objective": self.objective,
            "period": format_duration(self.period),
        }
        optional: dict[str, Any] = {
            "by": list(self.by),
            "filters": {dim: list(values) for dim, values in self.filters},
            **written_timing(self, "min_events", self.min_events),
        }
        written.update({k: v for k, v in optional.items() if v not in (None, [], {})})
        return written

    @classmethod
    def from_dict(cls, data: object) -> Slo:
        """An SLO from its written form; :class:`RuleError` lists every field at fault."""
        check = _Checker(data, _FIELDS, "an SLO")
        name = check._text("name", _NAME)
        sli = check._text("sli")
        if sli is not None and (problem := sli_metric_problem(sli)) is not None:
            check._fail("sli", problem)
            sli = None
        objective = check._threshold("objective", False)
        if check.data.get("objective") is None:
            check._fail("objective", "required: the share of good events, e.g. 0.995")
        elif objective is not None and not 0 < objective <= MAX_OBJECTIVE:
            check._fail(
                "objective",
                f"above 0 and at most {MAX_OBJECTIVE} (a budget of one event in a million), "
                f"got {objective:g}",
            )
        period = check._duration("period", timedelta(days=30), MIN_PERIOD)
        by, filters = check.breakdown(sli, period)
        slo = cls(
            name=name or "",
            sli=sli or "",
            objective=objective or 0.0,
            period=period,
            by=by,
            filters=filters,
            min_events=check.sample("min_events"),
            **check.timing(),
        )
        if check.problems:
            raise RuleError(check.problems)
        return slo


def counts_of(slo: Slo, result: QueryResult) -> dict[tuple[tuple[str, str], ...], Counts]:
    """Each label set's events and bad events from the SLI's query result.

    A rate's figure is its numerator ÷ its sample, so ``round(figure x sample)`` is
    the numerator: the good events of a success rate, the bad ones of an error rate.
    """
    good_is_higher = CATALOG[slo.sli].higher_is_better
    found = {}
    for row in result.rows:
        labels = tuple(sorted((dim, row.dimensions[dim] or "") for dim in slo.by))
        figure = row.values[slo.sli]
        total = figure.sample_size or 0
        bad = None
        if isinstance(figure.value, int | float) and math.isfinite(figure.value):
            numerator = round(float(figure.value) * total)
            bad = total - numerator if good_is_higher else numerator
        found[labels] = Counts(total, bad)
    return found


def burn_reading(slo: Slo, counts: Mapping[timedelta, Counts]) -> Reading:
    """An instance's reading from its counts over the SLO's windows (a window missing
    from ``counts`` had no events).

    Breach at the most severe level of the pairs whose long and short windows both
    burn above the pair's threshold; ok when some pair is judged and none breaches;
    no data when no pair has the minimum of events in both its windows. The value
    is the burn rate over the long window of the deciding pair (the first breaching
    pair, else the first judged), the sample its events.
    """
    first_judged: BurnWindow | None = None
    for pair, factor in slo.factors():
        burns = pair_burns(slo, pair, factor, counts)
        if burns is None:
            continue
        if burns:
            long = counts[pair.long]
            return Reading(
                Observation.BREACH, pair.severity, long.burn_rate(slo.budget), long.total
            )
        first_judged = first_judged or pair
    if first_judged is None:
        largest = max((c.total for c in counts.values()), default=0)
        return Reading(Observation.NODATA, None, None, largest)
    first = counts[first_judged.long]
    return Reading(Observation.OK, None, first.burn_rate(slo.budget), first.total)


def pair_burns(
    slo: Slo, pair: BurnWindow, factor: float, counts: Mapping[timedelta, Counts]
) -> bool | None:
    """Whether both windows of a pair burn above ``factor``; None (not judged) when either
    has fewer than the minimum events or no figure."""
    long, short = counts.get(pair.long), counts.get(pair.short)
    if long is None or short is None or min(long.total, short.total) < slo.effective_min_events:
        return None
    burns = (long.burn_rate(slo.budget), short.burn_rate(slo.budget))
    if burns[0] is None or burns[1] is None:
        return None
    return burns[0] > factor and burns[1] > factor
