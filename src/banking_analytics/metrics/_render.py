"""Per-dialect rendering: the few expressions engines spell differently.

sqlglot transpiles most of the SQL; a renderer overrides only what it gets
wrong or what a dialect lacks. DuckDB and PostgreSQL share the base: both have
exact nearest-rank ``percentile_disc``-style aggregates and ``AT TIME ZONE``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from banking_analytics.metrics._window import Bucket

__all__ = ["Renderer", "renderer_for"]


class Renderer:
    """Builds dialect-sensitive expressions and renders whole queries."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        # Loaded now rather than on the first query (sqlglot imports dialects lazily).
        self._dialect = Dialect.get_or_raise(dialect)

    def percentiles(self, value: exp.Expr, qs: Sequence[float]) -> exp.Expr:
        """Nearest-rank percentiles (``percentile_disc``) of non-null ``value``, as a list
        in the order of ``qs``: one sort serves them all.
        """
        fractions = exp.Array(expressions=[exp.Literal.number(q) for q in qs])
        return exp.WithinGroup(
            this=exp.PercentileDisc(this=fractions),
            expression=exp.Order(expressions=[exp.Ordered(this=value)]),
        )

    def bucket(self, timestamp: exp.Expr, bucket: Bucket, timezone: str) -> exp.Expr:
        """The instant a bucket starts: ``timestamp`` truncated in ``timezone``'s wall clock."""
        if bucket is Bucket.QUARTER_HOUR:
            # No engine truncates to 15 minutes by name; every UTC offset in the tz database
            # is a whole number of quarter hours, so flooring the epoch serves every timezone.
            seconds = exp.Literal.number(int(bucket.width.total_seconds()))
            epoch = exp.TimeToUnix(this=timestamp)
            floored = exp.Mul(
                this=exp.Floor(this=exp.Div(this=epoch, expression=seconds)), expression=seconds
            )
            return exp.UnixToTime(this=floored)
        unit = exp.var(bucket.value.upper())
        if timezone == "UTC":
            # Engines run their sessions in UTC, so truncating the instant is enough.
            return exp.TimestampTrunc(this=timestamp, unit=unit)
        zone = exp.Literal.string(timezone)
        local = exp.AtTimeZone(this=timestamp, zone=zone)
        truncated = exp.DateTrunc(unit=unit, this=local)  # type: ignore[no-untyped-call]
        return exp.AtTimeZone(this=truncated, zone=zone)

    def sql(self, expression: exp.Expr) -> str:
        return expression.sql(dialect=self._dialect)


_RENDERERS: dict[str, type[Renderer]] = {"duckdb": Renderer, "postgres": Renderer}


def renderer_for(dialect: str) -> Renderer:
    """The renderer of a sqlglot dialect this project supports."""
    try:
        return _RENDERERS[dialect](dialect)
    except KeyError:
        raise ValueError(f"no metric renderer for dialect {dialect!r}") from None
