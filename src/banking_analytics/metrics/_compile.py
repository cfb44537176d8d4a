"""Compile a metric query into one parameterised SQL statement per source table.

Each metric becomes one or more aggregate *parts* (a ratio's numerator and
denominator, a mean's sum and count, a percentile and its sample); identical
parts are computed once. Constants from metric definitions are rendered as
literals; every value that comes from the caller (window bounds, filter
values) is a positional placeholder, in the order of ``params``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

import sqlglot
from sqlglot import exp

from banking_analytics.events import SCHEMAS
from banking_analytics.metrics._model import (
    DIMENSIONS,
    All,
    AnyOf,
    Condition,
    Count,
    CountDistinct,
    Is,
    IsNull,
    Max,
    Mean,
    Measure,
    Metric,
    NotNull,
    Percentile,
    Ratio,
    Sum,
)
from banking_analytics.metrics._query import MetricQuery
from banking_analytics.metrics._render import Renderer
from banking_analytics.metrics._window import Bucket
from banking_analytics.store.statements import column as _column
from banking_analytics.vocabulary import EventType

__all__ = [
    "BUCKET_KEY",
    "CompiledQuery",
    "MetricParts",
    "aggregate",
    "compile_query",
    "count_condition",
]

BUCKET_KEY = "bucket"
TIME_COLUMN = "occurred_at"


@dataclass(frozen=True, slots=True)
class MetricParts:
    """Where a metric's figures are in the result: aliases of its aggregate parts.

    ``value`` is the figure itself (a count, sum or percentile), or the
    numerator of a ratio or the sum behind a mean; ``sample`` is the count the
    figure rests on (a ratio's denominator, a mean's or percentile's count).
    A percentile's ``value`` is a list, one element per percentile asked of the
    same values (one sort serves them all); ``index`` is its element.
    """

    metric: Metric
    value: str
    sample: str | None
    index: int | None = None


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    """One statement over one event table, ready for ``Engine.query(sql, params)``."""

    event_type: EventType
    table: str
    sql: str
    params: tuple[object, ...]
    #: Output key columns: the bucket (if any) then the dimensions.
    keys: tuple[str, ...]
    parts: tuple[MetricParts, ...]


def compile_query(query: MetricQuery, renderer: Renderer) -> tuple[CompiledQuery, ...]:
    """One statement per event type the query's metrics read, in a stable order.

    The SQL depends only on the query's shape (metrics, dimensions, bucket, timezone,
    and how many values each filter has); the window and filter values are
    parameters. Shapes are compiled once and kept, as dashboards ask the same ones
    again and again.
    """
    shape = _Shape(
        query.metrics,
        query.dimensions,
        query.bucket,
        tuple((dim, len(values)) for dim, values in query.filters),
        query.timezone,
    )
    params = (
        query.window.start,
        query.window.end,
        *(value for _, values in query.filters for value in values),
    )
    return tuple(
        CompiledQuery(t.event_type, t.table, t.sql, params, t.keys, t.parts)
        for t in _compile_shape(shape, renderer)
    )


@dataclass(frozen=True, slots=True)
class _Shape:
    metrics: tuple[Metric, ...]
    dimensions: tuple[str, ...]
    bucket: Bucket | None
    #: (dimension, number of values) of each filter.
    filters: tuple[tuple[str, int], ...]
    timezone: str


@lru_cache(maxsize=1024)
def _compile_shape(shape: _Shape, renderer: Renderer) -> tuple[CompiledQuery, ...]:
    by_type: dict[EventType, list[Metric]] = defaultdict(list)
    for metric in shape.metrics:
        by_type[metric.event_type].append(metric)
    return tuple(_compile_table(shape, et, by_type[et], renderer) for et in sorted(by_type))


def _compile_table(
    shape: _Shape, event_type: EventType, metrics: list[Metric], renderer: Renderer
) -> CompiledQuery:
    # Each key: its alias, what the select list shows, what rows are grouped by.
    keys: list[tuple[str, exp.Expr, exp.Expr]] = []
    if shape.bucket is not None:
        cut = renderer.bucket(_column(TIME_COLUMN), shape.bucket, shape.timezone)
        keys.append((BUCKET_KEY, cut.start, cut.key))
    for dim in shape.dimensions:
        column = _column(DIMENSIONS[dim].column)
        keys.append((dim, column, column.copy()))

    aggregates = _Aggregates(renderer, metrics)
    parts = tuple(_metric_parts(metric, aggregates) for metric in metrics)

    where: list[exp.Expr] = [
        _column(TIME_COLUMN) >= exp.Placeholder(),
        _column(TIME_COLUMN) < exp.Placeholder(),
    ]
    for dim, count in shape.filters:
        where.append(
            _column(DIMENSIONS[dim].column).isin(*(exp.Placeholder() for _ in range(count)))
        )

    table = SCHEMAS[event_type].table
    # The expressions are built for this statement alone: no builder needs to copy them.
    select = (
        sqlglot.select(
            *(shown.as_(alias, copy=False) for alias, shown, _ in keys),
            *(expr.as_(alias, copy=False) for alias, expr in aggregates.items()),
            copy=False,
        )
        .from_(table, copy=False)
        .where(exp.and_(*where, copy=False), copy=False)
    )
    if keys:
        # No ORDER BY: rows are put in order where they are turned into results, and
        # analyses that take whole columns need none (sorting 100k groups costs ~30 ms).
        select = select.group_by(*(grouped for _, _, grouped in keys), copy=False)
    found = len(list(select.find_all(exp.Placeholder)))
    expected = 2 + sum(count for _, count in shape.filters)
    if found != expected:
        raise AssertionError(f"{found} placeholders for {expected} parameters")
    return CompiledQuery(
        event_type,
        table,
        renderer.sql(select),
        (),
        tuple(alias for alias, _, _ in keys),
        parts,
    )


class _Aggregates:
    """The distinct aggregate expressions of one statement, each with an alias."""

    def __init__(self, renderer: Renderer, metrics: list[Metric]) -> None:
        self._renderer = renderer
        # sqlglot expressions compare and hash by structure: equal aggregates meet here.
        self._aliases: dict[exp.Expr, str] = {}
        self._expressions: dict[str, exp.Expr] = {}
        # Every percentile asked of the same values, so that one aggregate answers them all.
        self._quantiles: dict[exp.Expr, list[float]] = defaultdict(list)
        for metric in metrics:
            if isinstance(metric.measure, Percentile):
                qs = self._quantiles[_percentile_values(metric.measure)]
                if metric.measure.q not in qs:
                    qs.append(metric.measure.q)

    def add(self, expression: exp.Expr) -> str:
        # One look-up: hashing an expression walks its whole tree.
        alias = self._aliases.setdefault(expression, f"p{len(self._aliases)}")
        self._expressions.setdefault(alias, expression)
        return alias

    def items(self) -> list[tuple[str, exp.Expr]]:
        return list(self._expressions.items())

    def count(self, measure: Count | CountDistinct) -> str:
        if isinstance(measure, Count):
            if measure.where is None:
                return self.add(exp.Count(this=exp.Star()))
            return self.add(exp.Count(this=_when(measure.where, exp.Literal.number(1))))
        value = _when(measure.where, _column(measure.column))
        return self.add(exp.Count(this=exp.Distinct(expressions=[value])))

    def values(self, column: str, where: Condition | None) -> str:
        """How many non-null ``column`` values match ``where``."""
        return self.add(exp.Count(this=_when(where, _column(column))))

    def total(self, measure: Sum | Mean) -> str:
        value: exp.Expr = _column(measure.column)
        if isinstance(measure, Sum) and measure.negative_when is not None:
            value = exp.Case(
                ifs=[exp.If(this=_condition(measure.negative_when), true=exp.Neg(this=value))],
                default=value.copy(),
            )
        return self.add(exp.Sum(this=_when(measure.where, value)))

    def percentile(self, measure: Percentile) -> tuple[str, int]:
        """The list of percentiles of the measure's values, and the measure's place in it."""
        values = _percentile_values(measure)
        qs = self._quantiles[values]
        return self.add(self._renderer.percentiles(values, qs)), qs.index(measure.q)


def _percentile_values(measure: Percentile) -> exp.Expr:
    return _when(measure.where, _column(measure.column))


def _metric_parts(metric: Metric, aggregates: _Aggregates) -> MetricParts:
    measure: Measure = metric.measure
    match measure:
        case Count() | CountDistinct():
            return MetricParts(metric, aggregates.count(measure), None)
        case Sum():
            return MetricParts(metric, aggregates.total(measure), None)
        case Max(column=column, where=where):
            return MetricParts(
                metric, aggregates.add(exp.Max(this=_when(where, _column(column)))), None
            )
        case Mean(column=column, where=where):
            return MetricParts(metric, aggregates.total(measure), aggregates.values(column, where))
        case Percentile(column=column, where=where):
            sample = aggregates.values(column, where)
            value, index = aggregates.percentile(measure)
            return MetricParts(metric, value, sample, index)
        case Ratio(numerator=numerator, denominator=denominator):
            value = (
                aggregates.total(numerator)
                if isinstance(numerator, Sum)
                else aggregates.count(numerator)
            )
            return MetricParts(metric, value, aggregates.count(denominator))


def aggregate(metric: Metric, renderer: Renderer) -> exp.Expr:
    """The aggregate expression of a metric whose figure is one aggregate (a count,
    distinct count, sum or max), for a custom statement to select under its own name.

    It is the expression a compiled query selects for the metric, so a statement
    computes exactly the metric's figure over the rows it groups.
    """
    aggregates = _Aggregates(renderer, [metric])
    parts = _metric_parts(metric, aggregates)
    if parts.sample is not None or parts.index is not None:
        raise ValueError(f"metric {metric.name!r} is not a single aggregate (it has a sample)")
    [(_, expression)] = aggregates.items()
    return expression


def count_condition(metric: Metric) -> exp.Expr:
    """The condition on the events a count metric counts (TRUE for one counting every
    event), for a custom statement to filter or join rows by the metric's definition."""
    if not isinstance(metric.measure, Count):
        raise ValueError(f"metric {metric.name!r} is not a count of events")
    where = metric.measure.where
    return exp.true() if where is None else _condition(where)


# Nodes are built with their constructors: sqlglot's builder methods copy their operands
# and parse strings, which made compiling a dashboard's shapes cost tens of milliseconds.


def _when(where: Condition | None, value: exp.Expr) -> exp.Expr:
    """``value`` where the condition holds, else NULL (aggregates skip NULLs)."""
    if where is None:
        return value
    return exp.Case(ifs=[exp.If(this=_condition(where), true=value)])


def _literal(value: str | bool) -> exp.Expr:
    return exp.Boolean(this=value) if isinstance(value, bool) else exp.Literal.string(value)


def _condition(condition: Condition) -> exp.Expr:
    match condition:
        case Is(column=column, values=(value,)):
            return exp.EQ(this=_column(column), expression=_literal(value))
        case Is(column=column, values=values):
            return exp.In(this=_column(column), expressions=[_literal(v) for v in values])
        case NotNull(column=column):
            return exp.Not(this=exp.Is(this=_column(column), expression=exp.Null()))
        case IsNull(column=column):
            return exp.Is(this=_column(column), expression=exp.Null())
        case All(parts=parts):
            return _joined(exp.And, [_condition(p) for p in parts])
        case AnyOf(parts=parts):
            return _joined(exp.Or, [_condition(p) for p in parts])


def _joined(connective: type[exp.And | exp.Or], parts: list[exp.Expr]) -> exp.Expr:
    """``parts`` joined by AND or OR, each compound part in parentheses."""
    wrapped = [exp.Paren(this=p) if isinstance(p, exp.Connector) else p for p in parts]
    joined = wrapped[0]
    for part in wrapped[1:]:
        joined = connective(this=joined, expression=part)
    return joined
