"""Metrics as typed data: what is measured, over which events, cut by which dimensions.

A metric names its source event type and a *measure*. Measures are small
frozen values (``Count``, ``Ratio``, ``Percentile``, ...) built from
*conditions* over the event's own columns; nothing here is SQL. The compiler
turns them into expressions for each engine's dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from banking_analytics.events import SCHEMAS
from banking_analytics.vocabulary import EventType, PerformanceMetric

__all__ = [
    "DIMENSIONS",
    "All",
    "AnyOf",
    "Condition",
    "Count",
    "CountDistinct",
    "Dimension",
    "Is",
    "IsNull",
    "Max",
    "Mean",
    "Measure",
    "Metric",
    "NotNull",
    "Percentile",
    "Ratio",
    "Sum",
    "Unit",
]

Scalar = str | bool


@dataclass(frozen=True, slots=True)
class Is:
    """``column`` equals one of ``values``."""

    column: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class NotNull:
    """``column`` has a value."""

    column: str


@dataclass(frozen=True, slots=True)
class IsNull:
    """``column`` has no value."""

    column: str


@dataclass(frozen=True, slots=True)
class All:
    """Every part holds."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one part holds."""

    parts: tuple[Condition, ...]


Condition = Is | NotNull | IsNull | All | AnyOf


def condition_columns(condition: Condition | None) -> set[str]:
    """Every column a condition reads."""
    match condition:
        case None:
            return set()
        case Is(column=column) | NotNull(column=column) | IsNull(column=column):
            return {column}
        case All(parts=parts) | AnyOf(parts=parts):
            return set().union(*(condition_columns(p) for p in parts))


@dataclass(frozen=True, slots=True)
class Count:
    """Events matching ``where`` (all events when it is None)."""

    where: Condition | None = None


@dataclass(frozen=True, slots=True)
class CountDistinct:
    """Distinct non-null values of ``column`` among events matching ``where``."""

    column: str
    where: Condition | None = None


@dataclass(frozen=True, slots=True)
class Sum:
    """Sum of ``column`` over events matching ``where``; ``negative_when`` rows subtract."""

    column: str
    where: Condition | None = None
    negative_when: Condition | None = None


@dataclass(frozen=True, slots=True)
class Mean:
    """Arithmetic mean of the non-null ``column`` values of events matching ``where``."""

    column: str
    where: Condition | None = None


@dataclass(frozen=True, slots=True)
class Max:
    """The largest ``column`` value (a time: the latest) among events matching ``where``."""

    column: str
    where: Condition | None = None


@dataclass(frozen=True, slots=True)
class Percentile:
    """Nearest-rank percentile: the smallest value ``v`` with ``P(X ≤ v) ≥ q``.

    Over the non-null ``column`` values of events matching ``where``; that is
    the ``ceil(q·n)``-th smallest value, which is what DuckDB's
    ``quantile_disc`` and PostgreSQL's ``percentile_disc`` return.
    """

    column: str
    q: float
    where: Condition | None = None

    def __post_init__(self) -> None:
        if not 0 < self.q < 1:
            raise ValueError(f"percentile q must be in (0, 1), got {self.q}")


@dataclass(frozen=True, slots=True)
class Ratio:
    """``numerator ÷ denominator``; with ``per_day`` also ÷ the period's length in days."""

    numerator: Count | CountDistinct | Sum
    denominator: Count | CountDistinct
    per_day: bool = False


Measure = Count | CountDistinct | Sum | Mean | Max | Percentile | Ratio


def measure_columns(measure: Measure) -> set[str]:
    """Every column a measure reads."""
    match measure:
        case Count(where=where):
            return condition_columns(where)
        case (
            CountDistinct(column=column, where=where)
            | Mean(column=column, where=where)
            | Max(column=column, where=where)
        ):
            return {column} | condition_columns(where)
        case Percentile(column=column, where=where):
            return {column} | condition_columns(where)
        case Sum(column=column, where=where, negative_when=negative):
            return {column} | condition_columns(where) | condition_columns(negative)
        case Ratio(numerator=numerator, denominator=denominator):
            return measure_columns(numerator) | measure_columns(denominator)


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
    """One named figure.

    ``min_sample`` is the smallest sample (the denominator of a ratio, the
    number of values behind a mean or percentile) that yields a number; below
    it the answer is "insufficient data". ``serves`` names the spec's
    performance metric this figure answers, if any.
    """

    name: str
    event_type: EventType
    measure: Measure
    unit: Unit
    description: str
    higher_is_better: bool | None = None
    min_sample: int = 0
    serves: PerformanceMetric | None = None

    def __post_init__(self) -> None:
        missing = measure_columns(self.measure) - set(self.columns)
        if missing:
            raise ValueError(
                f"metric {self.name!r} reads {sorted(missing)}, "
                f"which {self.event_type.value} events do not have"
            )

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in SCHEMAS[self.event_type].stored_fields)

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The dimensions this metric can be cut by: those its events carry."""
        columns = set(self.columns)
        return tuple(name for name, d in DIMENSIONS.items() if d.column in columns)

    @property
    def is_money(self) -> bool:
        return self.unit is Unit.MINOR_UNITS
