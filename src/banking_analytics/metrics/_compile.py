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
from datetime import UTC, datetime, timedelta
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
    Provided,
    Ratio,
    Rolling,
    Sum,
)
from banking_analytics.metrics._query import MetricQuery
from banking_analytics.metrics._render import Renderer
from banking_analytics.metrics._source import Source
from banking_analytics.metrics._window import Bucket, QueryError, TimeWindow
from banking_analytics.store.statements import column as _column

__all__ = [
    "BUCKET_KEY",
    "CompiledQuery",
    "MetricParts",
    "aggregate",
    "compile_query",
    "count_condition",
]

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
    rolling = any(isinstance(m.measure, Rolling) for q in query.metrics for m in q.inputs)
    shape = _Shape(
        query.metrics,
        query.dimensions,
        query.bucket,
        tuple((dim, len(values)) for dim, values in query.filters),
        query.timezone,
        _days(query.window) if rolling else None,
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
    #: How many UTC days the window touches, for rolling counts (None without them): it
    #: decides whether a day mask can hold them.
    days: int | None = None


_DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _days(window: TimeWindow) -> int:
    """The UTC days a window touches, its first and last partial days included."""
    last = window.end - timedelta(microseconds=1)
    return (last - _EPOCH) // _DAY - (window.start - _EPOCH) // _DAY + 1


#: A compiled statement without its parameters, the slot each placeholder takes its value
#: from (in the order they appear in the SQL) and the constants of the definitions.
_Compiled = tuple[CompiledQuery, tuple[str, ...], dict[str, Scalar]]


@lru_cache(maxsize=1024)
def _compile_shape(shape: _Shape, renderer: Renderer) -> tuple[_Compiled, ...]:
    by_source: dict[str, list[Metric]] = defaultdict(list)
    sources: dict[str, Source] = {}
    # Rolling counts of the same values share one statement: one pass over the pairs.
    rolling: dict[tuple[str, object, object], list[Metric]] = defaultdict(list)
    # Provided metrics are computed by their providers, not by a statement here.
    wanted = list(
        dict.fromkeys(
            m
            for asked in shape.metrics
            for m in asked.inputs
            if not isinstance(m.measure, Provided)
        )
    )
    for metric in wanted:
        assert metric.source is not None
        sources[metric.source.name] = metric.source
        if isinstance(metric.measure, Rolling):
            rolling[_counted(metric.source, metric.measure.distinct)].append(metric)
    for metric in wanted:
        assert metric.source is not None
        measure = metric.measure
        if isinstance(measure, Rolling):
            continue
        if (
            isinstance(measure, CountDistinct)
            and shape.bucket is Bucket.DAY
            and _counted(metric.source, measure) in rolling
        ):
            # Distinct values in a day are the rolling count over one day: the statement
            # that reads the pairs for the longer spans answers it too.
            rolling[_counted(metric.source, measure)].append(metric)
            continue
        by_source[metric.source.name].append(metric)
    statements = [
        _Statement(shape, sources[name], renderer).aggregate(by_source[name])
        for name in sorted(by_source)
    ]
    for (name, _, _), metrics in rolling.items():
        statements.append(_Statement(shape, sources[name], renderer).rolling(metrics))
    return tuple(statements)


def _counted(source: Source, measure: CountDistinct) -> tuple[str, object, object]:
    """What a distinct count counts: the same values of the same rows of the same source."""
    return (source.name, measure.expression, measure.where)


def _span(metric: Metric) -> int:
    """Days a rolling count spans (a distinct count within each day: one)."""
    return metric.measure.days if isinstance(metric.measure, Rolling) else 1


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

    def percentiles(self, value: exp.Expr, qs: Sequence[float]) -> exp.Expr:
        return self._renderer.percentiles(value, qs)

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

    def rolling(self, metrics: list[Metric]) -> _Compiled:
        """Distinct values over trailing windows of days, at every day of the window.

        Each (dimensions, value, day) seen is a *pair*. A value counts at day ``d`` for a
        span of ``n`` days when one of its pairs lies in ``[d - n + 1, d]``: its coverage
        starts at a pair with no pair in the ``n`` days before it (+1), and ends ``n``
        days after a pair with none in the ``n`` days after it (-1). The running sum of
        those steps over the days is the count: work in proportion to the pairs, not to
        pairs x days, and every span from one pass. Steps before the window are carried
        into its first day. The longer spans read whole days back from the window's
        first; a one-day count (distinct values per day) reads from the window's start,
        as any other figure does.
        """
        spans = sorted({_span(m) for m in metrics})
        first_metric = metrics[0]
        measure = first_metric.measure
        counted = measure.distinct if isinstance(measure, Rolling) else measure
        assert isinstance(counted, CountDistinct)
        if self._shape.bucket is not Bucket.DAY:
            names = ", ".join(m.name for m in metrics if isinstance(m.measure, Rolling))
            raise QueryError(f"{names}: a rolling count over days; ask it with bucket 'day'")
        days = _Days(self._renderer, self._shape.timezone)
        first = days.number(exp.Placeholder(this="start"))
        dims = [dim for dim, _ in self._dimensions()]
        time = _column(self._source.time_column)
        value = self.when(counted.where, self.render(counted.expression))
        filters = self._filters()
        filters[0] = time >= days.start(
            exp.Sub(this=first.copy(), expression=_number(spans[-1] - 1))
        )
        filters.append(exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())))
        mask = self._renderer.day_mask
        # A zone's days can be one more than UTC's over the same window.
        reach = None if self._shape.days is None else self._shape.days + 1 + spans[-1] - 1
        if mask is not None and reach is not None and reach <= mask.bits:
            return self._rolling_by_mask(metrics, spans, value, filters, first, days)
        pairs = (
            sqlglot.select(
                *(column.as_(dim, copy=False) for dim, column in self._dimensions()),
                value.as_("v", copy=False),
                days.number(time.copy()).as_("day", copy=False),
                # Whether the pair's day has a row in the window itself (a one-day count
                # reads no earlier than the window's start).
                exp.GTE(
                    this=exp.Max(this=time.copy()), expression=exp.Placeholder(this="start")
                ).as_("inside", copy=False),
                copy=False,
            )
            .from_(self._source.from_clause(), copy=False)
            .where(exp.and_(*filters, copy=False), copy=False)
            .group_by(*(_ref(dim) for dim in dims), _ref("v"), _ref("day"), copy=False)
        )

        def over(function: exp.Expr) -> exp.Expr:
            return exp.Window(
                this=function,
                partition_by=[*(_ref(dim) for dim in dims), _ref("v")],
                order=exp.Order(expressions=[exp.Ordered(this=_ref("day"))]),
            )

        marks = sqlglot.select(
            *(_ref(dim) for dim in dims),
            _ref("day"),
            _ref("inside"),
            exp.Sub(this=_ref("day"), expression=over(exp.Lag(this=_ref("day")))).as_("since"),
            exp.Sub(this=over(exp.Lead(this=_ref("day"))), expression=_ref("day")).as_("until"),
            copy=False,
        ).from_("pairs", copy=False)

        def opens(gap: str, span: int) -> exp.Expr:
            """Whether a pair starts (gap: since) or ends (until) a coverage of ``span``."""
            if span == 1:
                return _ref("inside")
            return exp.Paren(
                this=exp.or_(
                    exp.Is(this=_ref(gap), expression=exp.Null()),
                    exp.GTE(this=_ref(gap), expression=_number(span)),
                    copy=False,
                )
            )

        def steps(day: exp.Expr, columns: list[exp.Expr], where: exp.Expr | None) -> exp.Select:
            select = sqlglot.select(
                *(_ref(dim) for dim in dims),
                exp.Greatest(this=day, expressions=[first.copy()]).as_("day"),
                *columns,
                copy=False,
            ).from_("marks", copy=False)
            return select if where is None else select.where(where, copy=False)

        # Every pair's start of coverage for every span in one select; its end falls on
        # another day for each span, so one select per span.
        parts = [
            steps(
                _ref("day"),
                [
                    exp.Case(
                        ifs=[exp.If(this=opens("since", n), true=_number(1))], default=_number(0)
                    ).as_(f"s{n}")
                    for n in spans
                ],
                None,
            )
        ]
        for n in spans:
            parts.append(
                steps(
                    exp.Add(this=_ref("day"), expression=_number(n)),
                    [_number(-1 if m == n else 0).as_(f"s{m}") for m in spans],
                    opens("until", n),
                )
            )
        union: exp.Query = parts[0]
        for part in parts[1:]:
            union = exp.union(union, part, distinct=False)
        totals = (
            sqlglot.select(
                *(_ref(dim) for dim in dims),
                _ref("day"),
                *(exp.Sum(this=_ref(f"s{n}")).as_(f"s{n}") for n in spans),
                copy=False,
            )
            .from_(union.subquery("steps"), copy=False)
            .group_by(*(_ref(dim) for dim in dims), _ref("day"), copy=False)
        )
        series = exp.Table(
            this=exp.Anonymous(
                this="generate_series",
                expressions=[first.copy(), days.number(exp.Placeholder(this="last"))],
            ),
            alias=exp.TableAlias(this=exp.to_identifier("s"), columns=[exp.to_identifier("d")]),
        )
        grid = sqlglot.select(*(_ref(dim, "c") for dim in dims), _ref("d", "s"), copy=False)
        if dims:
            combos = sqlglot.select(*(_ref(dim) for dim in dims), copy=False).from_("totals")
            grid = grid.from_(combos.distinct().subquery("c"), copy=False).join(
                series, join_type="cross"
            )
        else:
            grid = grid.from_(series, copy=False)
        on = exp.and_(
            exp.EQ(this=_ref("d", "g"), expression=_ref("day", "t")),
            *(exp.NullSafeEQ(this=_ref(dim, "g"), expression=_ref(dim, "t")) for dim in dims),
            copy=False,
        )

        def running(n: int) -> exp.Expr:
            return exp.Window(
                this=exp.Sum(this=exp.Coalesce(this=_ref(f"s{n}", "t"), expressions=[_number(0)])),
                partition_by=[_ref(dim, "g") for dim in dims],
                order=exp.Order(expressions=[exp.Ordered(this=_ref("d", "g"))]),
                spec=exp.WindowSpec(kind="ROWS", start="UNBOUNDED", start_side="PRECEDING"),
            )

        start = days.start(_ref("d", "g"))
        totals_table = exp.Table(
            this=exp.to_identifier("totals"), alias=exp.TableAlias(this=exp.to_identifier("t"))
        )
        select = (
            sqlglot.select(
                start.as_(BUCKET_KEY, copy=False),
                *(_ref(dim, "g").as_(dim, copy=False) for dim in dims),
                *(running(n).as_(f"r{n}", copy=False) for n in spans),
                copy=False,
            )
            .from_(grid.subquery("g"), copy=False)
            .join(totals_table, on=on, join_type="left", copy=False)
            .with_("pairs", pairs, copy=False)
            .with_("marks", marks, copy=False)
            .with_("totals", totals, copy=False)
        )
        parts_of = tuple(MetricParts(m, f"r{_span(m)}", None) for m in metrics)
        return self._finish(select, (BUCKET_KEY, *dims), parts_of)

    def _rolling_by_mask(
        self,
        metrics: list[Metric],
        spans: list[int],
        value: exp.Expr,
        filters: list[exp.Expr],
        first: exp.Expr,
        days: _Days,
    ) -> _Compiled:
        """The same counts where each value's active days fit in one integer's bits.

        Bit ``i`` of a value's mask is its day ``base + i``, where ``base`` is the first
        day a span reaches back to; the value counts at day ``d`` for a span of ``n``
        when any of the bits ``d - base - n + 1 .. d - base`` is set. One aggregate per
        value, then every day of the window masked: no pairs to sort, which makes it
        several times cheaper where the engine has wide integers (DuckDB's 128 bits).
        """
        mask = self._renderer.day_mask
        assert mask is not None
        dims = self._dimensions()
        time = _column(self._source.time_column)
        base = exp.Paren(this=exp.Sub(this=first.copy(), expression=_number(spans[-1] - 1)))

        def wide(number: exp.Expr) -> exp.Expr:
            return exp.Cast(this=number, to=mask.type.copy())

        def bit(index: exp.Expr) -> exp.Expr:
            return exp.BitwiseLeftShift(this=wide(_number(1)), expression=wide(index))

        offset = exp.Paren(this=exp.Sub(this=days.number(time.copy()), expression=base.copy()))
        inside = exp.GTE(this=time.copy(), expression=exp.Placeholder(this="start"))
        masks = (
            sqlglot.select(
                *(column.as_(dim, copy=False) for dim, column in dims),
                exp.BitwiseOrAgg(this=bit(offset)).as_("m", copy=False),
                # A one-day count reads no earlier than the window's start.
                exp.BitwiseOrAgg(
                    this=exp.Case(ifs=[exp.If(this=inside, true=bit(offset.copy()))])
                ).as_("inside", copy=False),
                copy=False,
            )
            .from_(self._source.from_clause(), copy=False)
            .where(exp.and_(*filters, copy=False), copy=False)
            .group_by(*(_ref(dim) for dim, _ in dims), value.copy(), copy=False)
        )

        def count(n: int) -> exp.Expr:
            lowest = exp.Sub(
                this=exp.Sub(this=_ref("d", "s"), expression=base.copy()), expression=_number(n - 1)
            )
            window = exp.BitwiseAnd(
                this=exp.BitwiseRightShift(
                    this=_ref("inside" if n == 1 else "m", "v"), expression=wide(lowest)
                ),
                expression=wide(_number((1 << n) - 1)),
            )
            seen = exp.NEQ(this=window, expression=wide(_number(0)))
            return exp.Count(this=exp.Case(ifs=[exp.If(this=seen, true=_number(1))]))

        series = exp.Table(
            this=exp.Anonymous(
                this="generate_series",
                expressions=[first.copy(), days.number(exp.Placeholder(this="last"))],
            ),
            alias=exp.TableAlias(this=exp.to_identifier("s"), columns=[exp.to_identifier("d")]),
        )
        start = days.start(_ref("d", "s"))
        select = (
            sqlglot.select(
                start.as_(BUCKET_KEY, copy=False),
                *(_ref(dim, "v").as_(dim, copy=False) for dim, _ in dims),
                *(count(n).as_(f"r{n}", copy=False) for n in spans),
                copy=False,
            )
            .from_(masks.subquery("v"), copy=False)
            .join(series, join_type="cross", copy=False)
            .group_by(_ref("d", "s"), *(_ref(dim, "v") for dim, _ in dims), copy=False)
        )
        parts = tuple(MetricParts(m, f"r{_span(m)}", None) for m in metrics)
        return self._finish(select, (BUCKET_KEY, *(dim for dim, _ in dims)), parts)

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


class _Days:
    """Days of a timezone as whole numbers, for rolling counts: a time's day, and the
    instant a day starts. In UTC they are the day bucket's own key (so day numbers
    agree with it, whatever its origin); elsewhere, the days since the epoch of the
    zone's wall clock (``t AT TIME ZONE zone``), whose midnights are converted back."""

    def __init__(self, renderer: Renderer, timezone: str) -> None:
        self._renderer = renderer
        self._zone = timezone

    def number(self, instant: exp.Expr) -> exp.Expr:
        if self._zone == "UTC":
            day = self._renderer.bucket(instant, Bucket.DAY, "UTC").key
        else:
            local = exp.AtTimeZone(this=instant, zone=exp.Literal.string(self._zone))
            day = exp.Floor(
                this=exp.Div(this=exp.TimeToUnix(this=local), expression=_number(86_400))
            )
        return exp.Cast(this=day, to=exp.DataType.build("bigint"))

    def start(self, day: exp.Expr) -> exp.Expr:
        if self._zone == "UTC":
            cut = self._renderer.bucket(_column("t"), Bucket.DAY, "UTC")
            key = cut.key
            return cut.start.transform(
                lambda node: exp.Paren(this=day.copy()) if node == key else node
            )
        midnight = exp.UnixToTime(
            this=exp.Mul(this=exp.Paren(this=day), expression=_number(86_400))
        )
        wall = exp.AtTimeZone(this=midnight, zone=exp.Literal.string("UTC"))
        return exp.AtTimeZone(this=wall, zone=exp.Literal.string(self._zone))


def _ref(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _number(value: int) -> exp.Expr:
    return exp.Literal.number(value)


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
    """The distinct aggregate expressions of one statement, each with an alias.

    Equal aggregates are recognised by what they compute (kind, value expression,
    condition: frozen values, cheap to hash), and each is built, binding its
    values, once.
    """

    def __init__(self, statement: _Statement, metrics: Sequence[Metric]) -> None:
        self._statement = statement
        self._aliases: dict[tuple[object, ...], str] = {}
        self._expressions: dict[str, exp.Expr] = {}
        # Every percentile asked of the same values, so that one aggregate answers them all.
        self._quantiles: dict[tuple[object, ...], list[float]] = defaultdict(list)
        for metric in metrics:
            if isinstance(metric.measure, Percentile):
                qs = self._quantiles[_values_key(metric.measure)]
                if metric.measure.q not in qs:
                    qs.append(metric.measure.q)

    def add(self, key: tuple[object, ...], build: Callable[[], exp.Expr]) -> str:
        """The alias of the aggregate ``key`` names, building it the first time."""
        alias = self._aliases.get(key)
        if alias is None:
            alias = self._aliases[key] = f"p{len(self._aliases)}"
            self._expressions[alias] = build()
        return alias

    def items(self) -> list[tuple[str, exp.Expr]]:
        return list(self._expressions.items())

    def _value(self, value: Value, where: Condition | None) -> exp.Expr:
        return self._statement.when(where, self._statement.render(value))

    def count(self, measure: Count | CountDistinct) -> str:
        if isinstance(measure, Count):
            where = measure.where
            if where is None:
                return self.add(("rows",), lambda: exp.Count(this=exp.Star()))
            return self.add(
                ("rows", where),
                lambda: exp.Count(this=self._statement.when(where, exp.Literal.number(1))),
            )
        value = measure.expression
        return self.add(
            ("distinct", value, measure.where),
            lambda: exp.Count(this=exp.Distinct(expressions=[self._value(value, measure.where)])),
        )

    def values(self, value: Value, where: Condition | None) -> str:
        """How many non-null values match ``where``."""
        return self.add(("values", value, where), lambda: exp.Count(this=self._value(value, where)))

    def total(self, measure: Sum | Mean) -> str:
        value = measure.expression
        return self.add(
            ("sum", value, measure.where),
            lambda: exp.Sum(this=self._value(value, measure.where)),
        )

    def extreme(self, measure: Max | Min) -> str:
        kind = exp.Max if isinstance(measure, Max) else exp.Min
        value = measure.expression
        return self.add(
            (kind.__name__, value, measure.where),
            lambda: kind(this=self._value(value, measure.where)),
        )

    def percentile(self, measure: Percentile) -> tuple[str, int]:
        """The list of percentiles of the measure's values, and the measure's place in it."""
        key = _values_key(measure)
        qs = self._quantiles[key]
        alias = self.add(
            ("percentiles", *key),
            lambda: self._statement.percentiles(self._value(measure.expression, measure.where), qs),
        )
        return alias, qs.index(measure.q)


def _values_key(measure: Percentile) -> tuple[object, ...]:
    return (measure.expression, measure.where)


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


def aggregate(metric: Metric, renderer: Renderer) -> exp.Expr:
    """The aggregate expression of a metric whose figure is one aggregate (a count,
    distinct count, sum, min or max), for a custom statement to select under its own name.

    It is the expression a compiled query selects for the metric, so a statement
    computes exactly the metric's figure over the rows it groups; the definition's
    constants are SQL literals (sqlglot quotes them), the statement binding its own values.
    """
    aggregates = _Aggregates(_Lent(metric, renderer), [metric])
    parts = _metric_parts(metric, aggregates)
    if parts.sample is not None or parts.index is not None:
        raise ValueError(f"metric {metric.name!r} is not a single aggregate (it has a sample)")
    [(_, expression)] = aggregates.items()
    return expression


def count_condition(metric: Metric, renderer: Renderer) -> exp.Expr:
    """The condition on the rows a count metric counts (TRUE for one counting every row),
    for a custom statement to filter or join rows by the metric's definition."""
    if not isinstance(metric.measure, Count):
        raise ValueError(f"metric {metric.name!r} is not a count of events")
    where = metric.measure.where
    return exp.true() if where is None else _Lent(metric, renderer).render(where)


class _Lent(_Statement):
    """A metric's definition lent to a custom statement: its constants as literals."""

    def __init__(self, metric: Metric, renderer: Renderer) -> None:
        assert metric.source is not None
        super().__init__(_Shape((metric,), (), None, (), "UTC"), metric.source, renderer)

    def bind(self, value: Scalar) -> exp.Expr:
        if isinstance(value, Enum):
            value = value.value
        if isinstance(value, bool):
            return exp.Boolean(this=value)
        if isinstance(value, str):
            return exp.Literal.string(value)
        return exp.Literal.number(value)
