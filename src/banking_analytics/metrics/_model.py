"""Metrics as typed data: what is measured, over which source, cut by which dimensions.

A metric names its :class:`~banking_analytics.metrics.Source` and a *measure*.
Measures are small frozen values (``Count``, ``Ratio``, ``Percentile``, ...)
built from expressions over the source's columns (:mod:`._expr`); a
``Rolling`` measure counts over a trailing window at each bucket, and a
``Derived`` one is arithmetic over other metrics. Nothing here is SQL: the
compiler turns them into expressions for each engine's dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from banking_analytics.metrics._expr import (
    All,
    AnyOf,
    Col,
    Compare,
    Condition,
    Is,
    IsNull,
    Not,
    NotNull,
    Value,
    as_expr,
    columns,
)
from banking_analytics.metrics._source import Source
from banking_analytics.vocabulary import PerformanceMetric

__all__ = [
    "DIMENSIONS",
    "PERIOD_DAYS",
    "All",
    "AnyOf",
    "Compare",
    "Condition",
    "Count",
    "CountDistinct",
    "Derived",
    "Dimension",
    "Is",
    "IsNull",
    "Max",
    "Mean",
    "Measure",
    "Metric",
    "Min",
    "Not",
    "NotNull",
    "Percentile",
    "Ratio",
    "Rolling",
    "Sum",
    "Unit",
]


class _OfValue:
    """A measure over a value given as a column name or an expression."""

    __slots__ = ()
    value: Value | str

    @property
    def expression(self) -> Value:
        """The value as an expression: a column name is that column."""
        return Col(self.value) if isinstance(self.value, str) else as_expr(self.value)


@dataclass(frozen=True, slots=True)
class Count:
    """Rows matching ``where`` (all rows when it is None)."""

    where: Condition | None = None


@dataclass(frozen=True, slots=True)
class CountDistinct(_OfValue):
    """Distinct non-null values of ``value`` among rows matching ``where``."""

    value: Value | str
    where: Condition | None = None


@dataclass(frozen=True, slots=True)
class Sum(_OfValue):
    """Sum of ``value`` (a column or an expression) over rows matching ``where``."""

    value: Value | str
    where: Condition | None = None


@dataclass(frozen=True, slots=True)
class Mean(_OfValue):
    """Arithmetic mean of the non-null ``value`` values of rows matching ``where``."""

    value: Value | str
    where: Condition | None = None


@dataclass(frozen=True, slots=True)
class Max(_OfValue):
    """The largest ``value`` (a time: the latest) among rows matching ``where``."""

    value: Value | str
    where: Condition | None = None


@dataclass(frozen=True, slots=True)
class Min(_OfValue):
    """The smallest ``value`` (a time: the earliest) among rows matching ``where``."""

    value: Value | str
    where: Condition | None = None


@dataclass(frozen=True, slots=True)
class Percentile(_OfValue):
    """Nearest-rank percentile: the smallest value ``v`` with ``P(X ≤ v) ≥ q``.

    Over the non-null ``value`` values of rows matching ``where``; that is
    the ``ceil(q·n)``-th smallest value, which is what DuckDB's
    ``quantile_disc`` and PostgreSQL's ``percentile_disc`` return.
    """

    value: Value | str
    q: float
    where: Condition | None = None

    def __post_init__(self) -> None:
        if not 0 < self.q < 1:
            raise ValueError(f"percentile q must be in (0, 1), got {self.q}")


@dataclass(frozen=True, slots=True)
class Ratio:
    """``numerator ÷ denominator``, both over the same rows."""

    numerator: Count | CountDistinct | Sum
    denominator: Count | CountDistinct


@dataclass(frozen=True, slots=True)
class Rolling:
    """Distinct values over a trailing window at each day: at day ``d``, the distinct
    non-null ``value`` values among rows matching ``where`` in the ``days`` days ending
    with ``d`` (``d - days + 1`` to ``d``, inclusive), as PostHog counts weekly (7) and
    monthly (30) active users. Asked with a day bucket.
    """

    distinct: CountDistinct
    days: int

    def __post_init__(self) -> None:
        if not 1 <= self.days <= 366:
            raise ValueError(f"a rolling window spans 1 to 366 days, got {self.days}")


#: In a derived metric's formula, the length in days of the span a row covers (the
#: window, or the part of it in the row's bucket): per-day rates divide by it.
PERIOD_DAYS = "period_days"


@dataclass(frozen=True, slots=True)
class Derived:
    """Arithmetic over other metrics' figures on the same row: ``formula`` reads each
    input metric as ``Col(<its name>)``, and the row's span in days as
    ``Col(PERIOD_DAYS)`` (per-day rates divide by it).

    A figure is given only where every input has one; a division by zero gives
    no value, not an error. The inputs may come from different sources: each is
    computed, and cached, over its own, and the rows meet by bucket and dimensions.
    """

    formula: Value
    inputs: tuple[Metric, ...]

    def __post_init__(self) -> None:
        named = {m.name for m in self.inputs}
        unknown = columns(self.formula) - named - {PERIOD_DAYS}
        if unknown:
            raise ValueError(f"derived formula reads {sorted(unknown)}, not among its inputs")
        if any(isinstance(m.measure, Derived) for m in self.inputs):
            raise ValueError("a derived metric's inputs are computed metrics, not derived ones")


@dataclass(frozen=True, slots=True)
class Provided:
    """Figures computed above the metric layer, by the analysis registered under
    ``provider`` with the :class:`MetricService` (:meth:`MetricService.provide`): revenue
    metrics come from the subscription ledger, which is more than one aggregate. The
    metric is still queried, cut, compared and cached like any other; ``dimensions``
    are the cuts its provider answers."""

    provider: str
    dimensions: tuple[str, ...]


Measure = (
    Count
    | CountDistinct
    | Sum
    | Mean
    | Max
    | Min
    | Percentile
    | Ratio
    | Rolling
    | Derived
    | Provided
)


def measure_columns(measure: Measure) -> set[str]:
    """Every source column a measure reads (a derived metric reads other metrics)."""
    match measure:
        case Count(where=where):
            return columns(where)
        case (
            CountDistinct(where=where)
            | Sum(where=where)
            | Mean(where=where)
            | Max(where=where)
            | Min(where=where)
            | Percentile(where=where)
        ):
            return columns(measure.expression) | columns(where)
        case Ratio(numerator=numerator, denominator=denominator):
            return measure_columns(numerator) | measure_columns(denominator)
        case Rolling(distinct=distinct):
            return measure_columns(distinct)
        case Derived() | Provided():
            return set()


class Unit(StrEnum):
    RATIO = "ratio"
    MILLISECONDS = "ms"
    SECONDS = "s"
    COUNT = "count"
    PER_DAY = "per_day"
    #: Money in the currency's minor units (cents); always cut by currency.
    MINOR_UNITS = "minor_units"
    TIMESTAMP = "timestamp"


@dataclass(frozen=True, slots=True)
class Dimension:
    """A column results can be grouped or filtered by."""

    name: str
    column: str
    description: str


DIMENSIONS: dict[str, Dimension] = {
    d.name: d
    for d in (
        Dimension("feature", "feature", "Banking feature"),
        Dimension("institution", "institution_id", "Financial institution id"),
        Dimension("aggregator", "aggregator", "Aggregator (Plaid, MX, ...)"),
        Dimension("error_category", "error_category", "Who must act on a failure"),
        Dimension("error_code", "error_code", "The aggregator's raw error code"),
        Dimension("outcome", "outcome", "How an attempt or sync ended"),
        Dimension("flow", "flow", "new, reauth or add_product"),
        Dimension("auth_method", "auth_method", "oauth, credentials or unknown"),
        Dimension("trigger", "trigger", "What started a sync"),
        Dimension("device", "device", "Device type"),
        Dimension("platform", "platform", "Client platform"),
        Dimension("action", "action", "What the user did"),
        Dimension("metric_type", "metric_type", "Client-reported performance metric"),
        Dimension("tier", "tier", "Subscription tier"),
        Dimension("plan", "plan", "Subscription plan"),
        Dimension("kind", "kind", "Subscription event kind"),
        Dimension("currency", "currency", "ISO-4217 currency"),
        Dimension("attributed_feature", "attributed_feature", "Feature credited with revenue"),
        Dimension("user", "user_id", "The host app's user id"),
        Dimension("connection", "connection_id", "Aggregator connection (Plaid item, MX member)"),
    )
}


@dataclass(frozen=True, slots=True)
class Metric:
    """One named figure over one source (a derived metric: over its inputs').

    ``min_sample`` is the smallest sample (the denominator of a ratio, the
    number of values behind a mean or percentile) that yields a number; below
    it the answer is "insufficient data". ``serves`` names the spec's
    performance metric this figure answers, if any.
    """

    name: str
    source: Source | None
    measure: Measure
    unit: Unit
    description: str
    higher_is_better: bool | None = None
    min_sample: int = 0
    serves: PerformanceMetric | None = None

    def __post_init__(self) -> None:
        if (self.source is None) != isinstance(self.measure, Derived | Provided):
            raise ValueError(
                f"metric {self.name!r}: a derived or provided metric, and only one, has no source"
            )
        missing = measure_columns(self.measure) - set(self.columns)
        if missing:
            raise ValueError(
                f"metric {self.name!r} reads {sorted(missing)}, "
                f"which source {self.source_name} does not have"
            )

    @property
    def source_name(self) -> str:
        """The source's name; a derived metric's is its inputs' sources joined by +, a
        provided one's its provider."""
        if self.source is not None:
            return self.source.name
        if isinstance(self.measure, Provided):
            return self.measure.provider
        return " + ".join(dict.fromkeys(m.source_name for m in self.inputs))

    @property
    def inputs(self) -> tuple[Metric, ...]:
        """The metrics computed to answer this one: itself, or a derived one's inputs."""
        return self.measure.inputs if isinstance(self.measure, Derived) else (self,)

    @property
    def columns(self) -> tuple[str, ...]:
        return () if self.source is None else self.source.columns

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The dimensions this metric can be cut by: those its source (every input's
        source, for a derived metric) carries; a provided metric's, those its provider
        answers."""
        if isinstance(self.measure, Provided):
            return self.measure.dimensions
        if self.source is None:
            shared = set.intersection(*(set(m.dimensions) for m in self.inputs))
            return tuple(name for name in DIMENSIONS if name in shared)
        available = set(self.columns)
        return tuple(name for name, d in DIMENSIONS.items() if d.column in available)

    @property
    def is_money(self) -> bool:
        return self.unit is Unit.MINOR_UNITS
