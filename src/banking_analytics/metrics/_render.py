"""Per-dialect rendering: the few expressions engines spell differently.

sqlglot transpiles most of the SQL; a renderer overrides only what it gets
wrong or what a dialect lacks. DuckDB and PostgreSQL share the base: both have
exact nearest-rank ``percentile_disc``-style aggregates and ``AT TIME ZONE``;
DuckDB overrides how a UTC bucket is computed and how percentiles are called.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from banking_analytics.metrics._window import Bucket

__all__ = ["DayMask", "Renderer", "TimeBucket", "renderer_for"]


#: Seconds from the epoch (a Thursday) to the Monday that weeks are counted from.
_WEEK_ORIGIN = 4 * 86_400


@dataclass(frozen=True, slots=True)
class TimeBucket:
    """A query's cut of time: rows are grouped by ``key``; ``start``, an expression of
    the key alone, is the instant the bucket starts (computed once per group).
    """

    key: exp.Expr
    start: exp.Expr


@dataclass(frozen=True, slots=True)
class DayMask:
    """An integer type whose bits can hold a value's active days (rolling counts)."""

    type: exp.DataType
    bits: int


class Renderer:
    """Builds dialect-sensitive expressions and renders whole queries."""

    #: Where the engine has an integer wide enough to hold a value's active days as bits,
    #: rolling counts are computed by masking them (see the compiler); otherwise from the
    #: sorted (value, day) pairs.
    day_mask: DayMask | None = None
    #: An exact integer type wider than 64 bits, for products that overflow BIGINT (money
    #: times an exchange rate scaled by 10^9) before they are divided back down.
    wide_integer: exp.DataType = exp.DataType.build("DECIMAL(38, 0)")
    #: Whether the engine has as-of joins (``ASOF JOIN``: each left row joined to the
    #: nearest right row by an inequality); otherwise what needs them is written with windows.
    asof_join: bool = False
    #: Whether the engine joins on equalities by hashing whatever sizes it estimates
    #: (DuckDB). PostgreSQL plans a join of common table expressions from its estimates
    #: of their rows, which can be a few where there are 10^5 (a table not analysed yet):
    #: it loops over one for each row of the other, in quadratic time. What would join
    #: two large derived tables is written with windows there.
    hash_joins: bool = False

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        # Loaded now rather than on the first query (sqlglot imports dialects lazily).
        self._dialect = Dialect.get_or_raise(dialect)

    def row_id(self) -> exp.Expr | None:
        """A nonnegative BIGINT unique to each row of a stored table, read as a column
        of it (DuckDB's ``rowid``), or ``None`` where the engine has none: it lets a
        query tell whether a group's first or last row by time is tied (see the
        sessions) with plain minimums instead of ordering by a composite key."""
        return None

    def percentiles(self, value: exp.Expr, qs: Sequence[float]) -> exp.Expr:
        """Nearest-rank percentiles (``percentile_disc``) of non-null ``value``, as a list
        in the order of ``qs``: one sort serves them all.
        """
        fractions = exp.Array(expressions=[exp.Literal.number(q) for q in qs])
        return exp.WithinGroup(
            this=exp.PercentileDisc(this=fractions),
            expression=exp.Order(expressions=[exp.Ordered(this=value)]),
        )

    def epoch_micros(self, timestamp: exp.Expr) -> exp.Expr:
        """Whole microseconds from the epoch to ``timestamp``, a BIGINT computed exactly
        (``EXTRACT`` answers a numeric)."""
        seconds = exp.Extract(this=exp.var("EPOCH"), expression=timestamp)
        return exp.cast(exp.Mul(this=seconds, expression=exp.Literal.number(1_000_000)), "BIGINT")

    def value_at(
        self, value: exp.Expr, order: Sequence[exp.Expr], *, last: bool = False
    ) -> exp.Expr:
        """An aggregate: ``value`` on the group's first row by ``order`` (its last with
        ``last``), NULL when that row's value is NULL. The order must not tie."""
        keys = [exp.Ordered(this=key, desc=last) for key in order]
        aggregated = exp.ArrayAgg(this=exp.Order(this=value, expressions=keys))
        # sqlglot's own arrays start at 0: it writes PostgreSQL's [1].
        return exp.Bracket(this=exp.Paren(this=aggregated), expressions=[exp.Literal.number(0)])

    def bucket(self, timestamp: exp.Expr, bucket: Bucket, timezone: str) -> TimeBucket:
        """How ``timestamp`` is cut into buckets truncated in ``timezone``'s wall clock.

        A calendar month, quarter or year is ``date_trunc`` of the local wall-clock time,
        converted back: it starts at local midnight on the 1st, in UTC too.
        """
        if (timezone == "UTC" and not bucket.is_calendar) or bucket is Bucket.QUARTER_HOUR:
            # In UTC every bucket is a fixed width from an origin (weeks from a Monday), so
            # flooring the epoch cuts it: whole-number arithmetic, where truncating a zoned
            # time costs the engine a calendar computation per row. No engine truncates to
            # 15 minutes by name; every UTC offset in the tz database is a whole number of
            # quarter hours, so flooring the epoch serves that bucket in every timezone.
            return self._fixed_width(timestamp, bucket)
        return self._wall_clock(timestamp, bucket, timezone)

    def _wall_clock(self, timestamp: exp.Expr, bucket: Bucket, timezone: str) -> TimeBucket:
        """Buckets truncated on the wall clock, grouped by the (zoneless) local truncation:
        converting it back to an instant once per group rather than once per row halves
        the time of a London month or day over 10M rows on DuckDB (8.6 s -> 4.0 s; on
        PostgreSQL over 1M rows: 2.0 s -> 1.5 s)."""
        local = self._local_time(timestamp, timezone)
        key = exp.DateTrunc(unit=exp.var(bucket.value.upper()), this=local)  # type: ignore[no-untyped-call]
        return TimeBucket(key, exp.AtTimeZone(this=key.copy(), zone=exp.Literal.string(timezone)))

    def _local_time(self, timestamp: exp.Expr, timezone: str) -> exp.Expr:
        """The zoneless wall-clock time of ``timestamp`` in ``timezone``."""
        return exp.AtTimeZone(this=timestamp, zone=exp.Literal.string(timezone))

    def _fixed_width(self, timestamp: exp.Expr, bucket: Bucket) -> TimeBucket:
        """UTC buckets counted from the epoch (weeks: from the first Monday after it), by
        flooring the epoch in seconds."""
        width = exp.Literal.number(int(bucket.width.total_seconds()))
        origin = _WEEK_ORIGIN if bucket is Bucket.WEEK else 0
        since: exp.Expr = exp.TimeToUnix(this=timestamp)
        if origin:
            since = exp.Paren(this=exp.Sub(this=since, expression=exp.Literal.number(origin)))
        key = exp.Floor(this=exp.Div(this=since, expression=width))
        start: exp.Expr = exp.Mul(this=key.copy(), expression=width.copy())
        if origin:
            start = exp.Add(this=start, expression=exp.Literal.number(origin))
        return TimeBucket(key, exp.UnixToTime(this=start))

    def sql(self, expression: exp.Expr) -> str:
        """The expression's SQL. The expression is consumed: it is rendered in place, not
        copied first (a statement is built to be rendered once).
        """
        return self._dialect.generate(expression, copy=False)


#: 0001-01-01, a Monday, in seconds from the epoch: an origin before any time a window
#: can start at (windows are Python datetimes), aligned to every bucket width.
_YEAR_ONE = -62_135_596_800


class DuckDBRenderer(Renderer):
    """DuckDB keeps times as integer microseconds: buckets divide those as integers,
    cheaper than flooring a floating-point epoch (the 15-minute health counts over
    850k sync runs: 521M instructions against 630M). Its percentiles are called as the
    plain aggregate they are, not as an ordered-set one. Its 128-bit integers hold the
    active days of rolling counts over up to 128 days (a 90-day window's MAU: 119)."""

    day_mask = DayMask(exp.DataType.build("UINT128"), 128)
    # DuckDB's integer division of decimals answers a double; of 128-bit integers, one.
    wide_integer = exp.DataType.build("INT128")
    asof_join = True
    hash_joins = True

    def row_id(self) -> exp.Expr | None:
        return exp.column("rowid")

    def percentiles(self, value: exp.Expr, qs: Sequence[float]) -> exp.Expr:
        # ``percentile_disc(...) WITHIN GROUP (ORDER BY x)`` is DuckDB's
        # ``quantile_disc(x, ... ORDER BY x)``: the same function, with the rows sorted
        # first for an ordering it does not need (the headline's two: 12.5 -> 7 ms).
        fractions = exp.Array(expressions=[exp.Literal.number(q) for q in qs])
        return exp.Anonymous(this="QUANTILE_DISC", expressions=[value, fractions])

    def epoch_micros(self, timestamp: exp.Expr) -> exp.Expr:
        return exp.UnixMicros(this=timestamp)

    def value_at(
        self, value: exp.Expr, order: Sequence[exp.Expr], *, last: bool = False
    ) -> exp.Expr:
        # The engine's own aggregate: no list built per group (10M events into 2.4M
        # groups: about half the time of the ordered list's first element).
        key = order[0] if len(order) == 1 else exp.Tuple(expressions=list(order))
        name = "ARG_MAX_NULL" if last else "ARG_MIN_NULL"
        return exp.Anonymous(this=name, expressions=[value, key])

    def _local_time(self, timestamp: exp.Expr, timezone: str) -> exp.Expr:
        if timezone != "UTC":
            return super()._local_time(timestamp, timezone)
        # UTC's wall clock is the epoch: a timestamp made from its microseconds is that
        # clock without an ICU conversion per row (UTC months over 10M rows: 3.6 -> 0.9 s).
        return exp.UnixToTime(this=exp.UnixMicros(this=timestamp), scale=exp.UnixToTime.MICROS)

    def _fixed_width(self, timestamp: exp.Expr, bucket: Bucket) -> TimeBucket:
        # Counted from year one, every time a query reads is positive, so integer
        # division (which truncates) floors; and weeks start on Mondays.
        seconds = int(bucket.width.total_seconds())
        since = exp.Paren(
            this=exp.Add(
                this=exp.UnixMicros(this=timestamp),
                expression=exp.Literal.number(-_YEAR_ONE * 1_000_000),
            )
        )
        key = exp.IntDiv(this=since, expression=exp.Literal.number(seconds * 1_000_000))
        start = exp.Sub(
            this=exp.Mul(this=key.copy(), expression=exp.Literal.number(seconds)),
            expression=exp.Literal.number(-_YEAR_ONE),
        )
        return TimeBucket(key, exp.UnixToTime(this=start))


_RENDERERS: dict[str, type[Renderer]] = {"duckdb": DuckDBRenderer, "postgres": Renderer}


def renderer_for(dialect: str) -> Renderer:
    """The renderer of a sqlglot dialect this project supports."""
    try:
        return _RENDERERS[dialect](dialect)
    except KeyError:
        raise ValueError(f"no metric renderer for dialect {dialect!r}") from None
