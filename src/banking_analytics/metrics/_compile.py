"""Compile a metric query into parameterised SQL statements, one per source (and one per
rolling metric).

Each metric becomes one or more aggregate *parts* (a ratio's numerator and
denominator, a mean's sum and count, a percentile and its sample); identical
parts are computed once. Every value is a bound parameter: the constants of
metric definitions and what the caller gives (window bounds, filter values)
alike. A derived metric is compiled as its inputs; the service combines them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from functools import lru_cache

import sqlglot
from sqlglot import exp

from banking_analytics.metrics._expr import Condition, Scalar, Value, to_sql
from banking_analytics.metrics._model import (
    DIMENSIONS,
    Count,
    CountDistinct,
    Max,
    Mean,
    Measure,
    Metric,
    Min,
    Percentile,
    Ratio,
    Rolling,
    Sum,
)
from banking_analytics.metrics._query import MetricQuery
from banking_analytics.metrics._render import Renderer
from banking_analytics.metrics._source import Source
from banking_analytics.metrics._window import Bucket, QueryError
from banking_analytics.store.statements import column as _column

__all__ = ["BUCKET_KEY", "CompiledQuery", "MetricParts", "compile_query"]

BUCKET_KEY = "bucket"


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
    """One statement over one source, ready for ``Engine.query(sql, params)``."""

    source: str
    #: The tables the statement reads: their data versions key its cached answer.
    depends_on: tuple[str, ...]
    sql: str
    params: tuple[object, ...]
    #: Output key columns: the bucket (if any) then the dimensions.
    keys: tuple[str, ...]
    parts: tuple[MetricParts, ...]


def compile_query(query: MetricQuery, renderer: Renderer) -> tuple[CompiledQuery, ...]:
    """The statements answering a query's metrics (a derived metric's: its inputs'), in a
    stable order.

    The SQL depends only on the query's shape (metrics, dimensions, bucket, timezone,
    and how many values each filter has); the window and filter values are bound
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
    given: dict[str, object] = {
        "start": query.window.start,
        "end": query.window.end,
        "last": query.window.end - timedelta(microseconds=1),
    }
    for f, (_, values) in enumerate(query.filters):
        for v, value in enumerate(values):
            given[f"f{f}_{v}"] = value
    return tuple(
        CompiledQuery(
            t.source,
            t.depends_on,
            t.sql,
            tuple(given[slot] if slot in given else constants[slot] for slot in slots),
            t.keys,
            t.parts,
        )
        for t, slots, constants in _compile_shape(shape, renderer)
    )


@dataclass(frozen=True, slots=True)
class _Shape:
    metrics: tuple[Metric, ...]
    dimensions: tuple[str, ...]
    bucket: Bucket | None
    #: (dimension, number of values) of each filter.
    filters: tuple[tuple[str, int], ...]
    timezone: str


#: A compiled statement without its parameters, the slot each placeholder takes its value
#: from (in the order they appear in the SQL) and the constants of the definitions.
_Compiled = tuple[CompiledQuery, tuple[str, ...], dict[str, Scalar]]


@lru_cache(maxsize=1024)
def _compile_shape(shape: _Shape, renderer: Renderer) -> tuple[_Compiled, ...]:
    by_source: dict[str, list[Metric]] = defaultdict(list)
    sources: dict[str, Source] = {}
    rolling: list[Metric] = []
    for metric in dict.fromkeys(m for wanted in shape.metrics for m in wanted.inputs):
        assert metric.source is not None
        if isinstance(metric.measure, Rolling):
            rolling.append(metric)
            continue
        by_source[metric.source.name].append(metric)
        sources[metric.source.name] = metric.source
    statements = [
        _Statement(shape, sources[name], renderer).aggregate(by_source[name])
        for name in sorted(by_source)
    ]
    for metric in rolling:
        assert metric.source is not None
        statements.append(_Statement(shape, metric.source, renderer).rolling(metric))
    return tuple(statements)


class _Statement:
    """Builds one statement over one source, binding each value it uses."""

    def __init__(self, shape: _Shape, source: Source, renderer: Renderer) -> None:
        self._shape = shape
        self._source = source
        self._renderer = renderer
        self._constants: dict[str, Scalar] = {}

    def bind(self, value: Scalar) -> exp.Expr:
        slot = f"c{len(self._constants)}"
        # Enum members bind as the plain values drivers know.
        self._constants[slot] = value.value if isinstance(value, Enum) else value
        return exp.Placeholder(this=slot)

    def render(self, value: Value | Condition) -> exp.Expr:
        return to_sql(value, self.bind, _column)

    def when(self, where: Condition | None, value: exp.Expr) -> exp.Expr:
        """``value`` where the condition holds, else NULL (aggregates skip NULLs)."""
        if where is None:
            return value
        return exp.Case(ifs=[exp.If(this=self.render(where), true=value)])

    def _filters(self) -> list[exp.Expr]:
        """The window and the caller's filters, over the source's rows."""
        time = _column(self._source.time_column)
        found: list[exp.Expr] = [
            time >= exp.Placeholder(this="start"),
            time < exp.Placeholder(this="end"),
        ]
        for f, (dim, count) in enumerate(self._shape.filters):
            found.append(
                _column(DIMENSIONS[dim].column).isin(
                    *(exp.Placeholder(this=f"f{f}_{v}") for v in range(count))
                )
            )
        return found

    def _dimensions(self) -> list[tuple[str, exp.Expr]]:
        return [(dim, _column(DIMENSIONS[dim].column)) for dim in self._shape.dimensions]

    def aggregate(self, metrics: list[Metric]) -> _Compiled:
        """Every metric's aggregate parts, grouped by the bucket and the dimensions."""
        # Each key: its alias, what the select list shows, what rows are grouped by.
        keys: list[tuple[str, exp.Expr, exp.Expr]] = []
        if self._shape.bucket is not None:
            cut = self._renderer.bucket(
                _column(self._source.time_column), self._shape.bucket, self._shape.timezone
            )
            keys.append((BUCKET_KEY, cut.start, cut.key))
        keys += [(dim, column, column.copy()) for dim, column in self._dimensions()]

        aggregates = _Aggregates(self, metrics)
        parts = tuple(_metric_parts(metric, aggregates) for metric in metrics)
        # The expressions are built for this statement alone: no builder needs to copy them.
        select = (
            sqlglot.select(
                *(shown.as_(alias, copy=False) for alias, shown, _ in keys),
                *(expr.as_(alias, copy=False) for alias, expr in aggregates.items()),
                copy=False,
            )
            .from_(self._source.from_clause(), copy=False)
            .where(exp.and_(*self._filters(), copy=False), copy=False)
        )
        if keys:
            # No ORDER BY: rows are put in order where they are turned into results, and
            # analyses that take whole columns need none (sorting 100k groups costs ~30 ms).
            select = select.group_by(*(grouped for _, _, grouped in keys), copy=False)
        return self._finish(select, tuple(alias for alias, _, _ in keys), parts)

    def rolling(self, metric: Metric) -> _Compiled:
        """Distinct values over a trailing window of days, at every day of the window.

        Each (dimensions, value, day) seen once is a *pair*. A value counts at day ``d``
        when one of its pairs lies in ``[d - days + 1, d]``: its coverage starts at a
        pair with no pair in the ``days`` days before it (+1), and ends ``days`` after a
        pair with none in the ``days`` days after it (-1). The running sum of those
        steps over the days is the count: work in proportion to the pairs, not to
        pairs x days. Steps before the window are carried into its first day.
        """
        measure = metric.measure
        assert isinstance(measure, Rolling)
        if self._shape.bucket is not Bucket.DAY or self._shape.timezone != "UTC":
            raise QueryError(
                f"{metric.name} is a rolling count over days: ask it with bucket 'day' in UTC"
            )
        span = measure.days
        cut = self._renderer.bucket(_column(self._source.time_column), Bucket.DAY, "UTC")

        def day_of(instant: exp.Expr) -> exp.Expr:
            # Rendered from the same bucket key, so day numbers agree whatever its origin.
            day = self._renderer.bucket(instant, Bucket.DAY, "UTC").key
            return exp.Cast(this=day, to=exp.DataType.build("bigint"))

        first = day_of(exp.Placeholder(this="start"))
        dims = self._dimensions()

        def ref(name: str, table: str | None = None) -> exp.Column:
            return exp.column(name, table=table, quoted=True)

        value = self.when(measure.distinct.where, self.render(measure.distinct.expression))
        filters = self._filters()
        # The window's first bucket reads whole days back to (days - 1) before it.
        filters[0] = _column(self._source.time_column) >= exp.Sub(
            this=self._renderer.bucket(exp.Placeholder(this="start"), Bucket.DAY, "UTC").start,
            expression=exp.Interval(this=exp.Literal.string(str(span - 1)), unit=exp.var("DAY")),
        )
        pairs = (
            sqlglot.select(
                *(column.as_(dim, copy=False) for dim, column in dims),
                value.as_("v", copy=False),
                exp.Cast(this=cut.key, to=exp.DataType.build("bigint")).as_("day", copy=False),
                copy=False,
            )
            .from_(self._source.from_clause(), copy=False)
            .where(
                exp.and_(
                    *filters,
                    exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())),
                    copy=False,
                ),
                copy=False,
            )
            .group_by(*(ref(dim) for dim, _ in dims), ref("v"), ref("day"), copy=False)
        )
        by_value = exp.Window(
            partition_by=[*(ref(dim) for dim, _ in dims), ref("v")],
            order=exp.Order(expressions=[exp.Ordered(this=ref("day"))]),
        )

        def over(function: exp.Expr) -> exp.Expr:
            window = by_value.copy()
            window.set("this", function)
            return window

        marks = sqlglot.select(
            *(ref(dim) for dim, _ in dims),
            ref("day"),
            exp.Sub(this=ref("day"), expression=over(exp.Lag(this=ref("day")))).as_("since"),
            exp.Sub(this=over(exp.Lead(this=ref("day"))), expression=ref("day")).as_("until"),
            copy=False,
        ).from_("pairs", copy=False)
        span_literal = exp.Literal.number(span)

        def steps(day: exp.Expr, gap: str, step: int) -> exp.Select:
            open_ended = exp.or_(
                exp.Is(this=ref(gap), expression=exp.Null()),
                exp.GTE(this=ref(gap), expression=span_literal.copy()),
                copy=False,
            )
            return (
                sqlglot.select(
                    *(ref(dim) for dim, _ in dims),
                    exp.Greatest(this=day, expressions=[first.copy()]).as_("day"),
                    exp.Literal.number(step).as_("step"),
                    copy=False,
                )
                .from_("marks", copy=False)
                .where(open_ended, copy=False)
            )

        starts = steps(ref("day"), "since", 1)
        ends = steps(exp.Add(this=ref("day"), expression=span_literal.copy()), "until", -1)
        totals = (
            sqlglot.select(
                *(ref(dim) for dim, _ in dims),
                ref("day"),
                exp.Sum(this=ref("step")).as_("step"),
                copy=False,
            )
            .from_(exp.union(starts, ends, distinct=False).subquery("steps"), copy=False)
            .group_by(*(ref(dim) for dim, _ in dims), ref("day"), copy=False)
        )
        series = exp.Table(
            this=exp.Anonymous(
                this="generate_series",
                expressions=[first.copy(), day_of(exp.Placeholder(this="last"))],
            ),
            alias=exp.TableAlias(this=exp.to_identifier("s"), columns=[exp.to_identifier("d")]),
        )
        grid = sqlglot.select(*(ref(dim, "c") for dim, _ in dims), ref("d", "s"), copy=False)
        if dims:
            combos = (
                sqlglot.select(*(ref(dim) for dim, _ in dims), copy=False)
                .from_("totals")
                .distinct()
            )
            grid = grid.from_(combos.subquery("c"), copy=False).join(series, join_type="cross")
        else:
            grid = grid.from_(series, copy=False)
        on = exp.and_(
            exp.EQ(this=ref("d", "g"), expression=ref("day", "t")),
            *(exp.NullSafeEQ(this=ref(dim, "g"), expression=ref(dim, "t")) for dim, _ in dims),
            copy=False,
        )
        running = exp.Window(
            this=exp.Sum(
                this=exp.Coalesce(this=ref("step", "t"), expressions=[exp.Literal.number(0)])
            ),
            partition_by=[ref(dim, "g") for dim, _ in dims],
            order=exp.Order(expressions=[exp.Ordered(this=ref("d", "g"))]),
            spec=exp.WindowSpec(kind="ROWS", start="UNBOUNDED", start_side="PRECEDING"),
        )
        day_key = cut.key
        start = cut.start.transform(lambda node: ref("d", "g") if node == day_key else node)
        select = (
            sqlglot.select(
                start.as_(BUCKET_KEY, copy=False),
                *(ref(dim, "g").as_(dim, copy=False) for dim, _ in dims),
                running.as_("p0", copy=False),
                copy=False,
            )
            .from_(grid.subquery("g"), copy=False)
            .join(
                exp.Table(
                    this=exp.to_identifier("totals"),
                    alias=exp.TableAlias(this=exp.to_identifier("t")),
                ),
                on=on,
                join_type="left",
                copy=False,
            )
            .with_("pairs", pairs, copy=False)
            .with_("marks", marks, copy=False)
            .with_("totals", totals, copy=False)
        )
        keys = (BUCKET_KEY, *(dim for dim, _ in dims))
        return self._finish(select, keys, (MetricParts(metric, "p0", None),))

    def _finish(
        self, select: exp.Expr, keys: tuple[str, ...], parts: tuple[MetricParts, ...]
    ) -> _Compiled:
        sql, slots = _positional(self._renderer.sql(select), self._renderer.dialect)
        unknown = set(slots) - {"start", "end", "last"} - set(self._constants)
        unknown -= {s for s in slots if s.startswith("f")}
        if unknown:
            raise AssertionError(f"placeholders without values: {sorted(unknown)}")
        statement = CompiledQuery(self._source.name, self._source.depends_on, sql, (), keys, parts)
        return statement, slots, self._constants


#: A named placeholder as each dialect renders it.
_NAMED = {"duckdb": re.compile(r"\$([a-z][a-z0-9_]*)"), "postgres": re.compile(r"%\((\w+)\)s")}
_POSITIONAL = {"duckdb": "?", "postgres": "%s"}


def _positional(sql: str, dialect: str) -> tuple[str, tuple[str, ...]]:
    """Named placeholders made positional, and each one's slot in the order they appear.

    Placeholders are named while a statement is built and numbered once it is
    rendered: the order of the SQL text is the only order the driver knows, and
    a dialect may render parts in another order than they were built.
    """
    slots: list[str] = []

    def positional(match: re.Match[str]) -> str:
        slots.append(match[1])
        return _POSITIONAL[dialect]

    return _NAMED[dialect].sub(positional, sql), tuple(slots)


class _Aggregates:
    """The distinct aggregate expressions of one statement, each with an alias."""

    def __init__(self, statement: _Statement, metrics: Sequence[Metric]) -> None:
        self._statement = statement
        # sqlglot expressions compare and hash by structure: equal aggregates meet here
        # (a bound constant is named by its value's position, so equal definitions bind
        # equal values: the first binding of an expression is kept and the rest dropped).
        self._aliases: dict[exp.Expr, str] = {}
        self._expressions: dict[str, exp.Expr] = {}
        # Every percentile asked of the same values, so that one aggregate answers them all.
        self._quantiles: dict[Percentile, list[float]] = defaultdict(list)
        self._first: dict[tuple[object, ...], Percentile] = {}
        for metric in metrics:
            if isinstance(metric.measure, Percentile):
                same = self._first.setdefault(_values_key(metric.measure), metric.measure)
                qs = self._quantiles[same]
                if metric.measure.q not in qs:
                    qs.append(metric.measure.q)

    def add(self, build: Callable[[], exp.Expr]) -> str:
        """The alias of an aggregate, building it (and binding its values) once."""
        expression = _Unbound(self._statement).of(build)
        alias = self._aliases.get(expression)
        if alias is None:
            alias = self._aliases[expression] = f"p{len(self._aliases)}"
            self._expressions[alias] = build()
        return alias

    def items(self) -> list[tuple[str, exp.Expr]]:
        return list(self._expressions.items())

    def count(self, measure: Count | CountDistinct) -> str:
        statement = self._statement
        if isinstance(measure, Count):
            if measure.where is None:
                return self.add(lambda: exp.Count(this=exp.Star()))
            where = measure.where
            return self.add(lambda: exp.Count(this=statement.when(where, exp.Literal.number(1))))
        return self.add(
            lambda: exp.Count(
                this=exp.Distinct(expressions=[self._value(measure.expression, measure.where)])
            )
        )

    def _value(self, value: Value, where: Condition | None) -> exp.Expr:
        return self._statement.when(where, self._statement.render(value))

    def values(self, value: Value, where: Condition | None) -> str:
        """How many non-null values match ``where``."""
        return self.add(lambda: exp.Count(this=self._value(value, where)))

    def total(self, measure: Sum | Mean) -> str:
        return self.add(lambda: exp.Sum(this=self._value(measure.expression, measure.where)))

    def extreme(self, measure: Max | Min) -> str:
        kind = exp.Max if isinstance(measure, Max) else exp.Min
        return self.add(lambda: kind(this=self._value(measure.expression, measure.where)))

    def percentile(self, measure: Percentile) -> tuple[str, int]:
        """The list of percentiles of the measure's values, and the measure's place in it."""
        same = self._first[_values_key(measure)]
        qs = self._quantiles[same]
        alias = self.add(
            lambda: self._statement._renderer.percentiles(
                self._value(same.expression, same.where), qs
            )
        )
        return alias, qs.index(measure.q)


def _values_key(measure: Percentile) -> tuple[object, ...]:
    return (measure.expression, measure.where)


class _Unbound:
    """Builds an aggregate with its constants left as literals: the structure by which
    equal aggregates are recognised, without binding anything."""

    def __init__(self, statement: _Statement) -> None:
        self._statement = statement

    def of(self, build: Callable[[], exp.Expr]) -> exp.Expr:
        statement = self._statement
        saved = statement._constants
        statement._constants = {}
        try:
            built = build()
            constants = statement._constants
        finally:
            statement._constants = saved
        return built.transform(
            lambda node: (
                _literal(constants[node.name])
                if isinstance(node, exp.Placeholder) and node.name in constants
                else node
            )
        )


def _literal(value: Scalar) -> exp.Expr:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, str):
        return exp.Literal.string(value)
    return exp.Literal.number(value)


def _metric_parts(metric: Metric, aggregates: _Aggregates) -> MetricParts:
    measure: Measure = metric.measure
    match measure:
        case Count() | CountDistinct():
            return MetricParts(metric, aggregates.count(measure), None)
        case Sum():
            return MetricParts(metric, aggregates.total(measure), None)
        case Max() | Min():
            return MetricParts(metric, aggregates.extreme(measure), None)
        case Mean(where=where):
            return MetricParts(
                metric, aggregates.total(measure), aggregates.values(measure.expression, where)
            )
        case Percentile(where=where):
            sample = aggregates.values(measure.expression, where)
            alias, index = aggregates.percentile(measure)
            return MetricParts(metric, alias, sample, index)
        case Ratio(numerator=numerator, denominator=denominator):
            value = (
                aggregates.total(numerator)
                if isinstance(numerator, Sum)
                else aggregates.count(numerator)
            )
            return MetricParts(metric, value, aggregates.count(denominator))
    raise AssertionError(f"{type(measure).__name__} is not compiled into an aggregate")
