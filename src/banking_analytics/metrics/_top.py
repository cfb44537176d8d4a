"""Top-N: the N dimension-value combinations with the most events, and "other" for the rest.

A query cut by a dimension with many values (users, connections) can ask for its
``limit`` busiest combinations instead of all of them:

1. the combinations are ranked in the store by how many events of the first
   metric's event type they have in the window (after the query's filters),
   most first, ties in value order; events missing a dimension value are not
   ranked and count in "other";
2. the query runs filtered to the top N's values (rows of combinations outside
   the top N that the filters let through are dropped), and once more without
   the dimensions, for the totals of each bucket;
3. "other" is, per bucket, total - Σ top N, part by part: a count or sum
   subtracts, and a ratio or mean is then its numerator's remainder ÷ its
   denominator's remainder, so every figure of "other" is what the query would
   give over exactly the events outside the top N.

Only metrics whose parts add up across combinations can have an "other" row:
counts, sums, and ratios and means of them. Distinct counts, percentiles and
latest times cannot (a user active in two combinations counts once in their
union), and a ``limit`` with one of them is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from banking_analytics.metrics._budget import window_rows
from banking_analytics.metrics._compile import BUCKET_KEY, CompiledQuery
from banking_analytics.metrics._model import DIMENSIONS, Count, Mean, Metric, Ratio, Sum
from banking_analytics.metrics._query import MetricQuery
from banking_analytics.metrics._render import Renderer
from banking_analytics.metrics._window import QueryError
from banking_analytics.store import Engine
from banking_analytics.store.statements import column

__all__ = ["MAX_LIMIT", "OTHER", "TopN"]

#: The dimension value of the row holding every combination outside the top N. Stored
#: dimension values cannot be it: they are identifiers or vocabulary words, which
#: never contain parentheses.
OTHER = "(other)"
#: The largest N: each of the top N's values is a bound parameter of the query.
MAX_LIMIT = 1000

#: Each statement of a query with its raw result (bucket, dimensions, aggregate parts).
Answers = list[tuple[CompiledQuery, pa.Table]]
#: Runs a metric query: its answers, and how many statements came from the cache.
Fetch = Callable[[MetricQuery], tuple[Answers, int]]


def _adds_up(metric: Metric) -> bool:
    """Whether the metric's parts over a union of combinations are the sums of its parts
    over each (counts and sums, and ratios and means of them)."""
    measure = metric.measure
    if isinstance(measure, Ratio):
        return isinstance(measure.numerator, Count | Sum) and isinstance(measure.denominator, Count)
    return isinstance(measure, Count | Sum | Mean)


@dataclass(frozen=True, slots=True)
class TopN:
    """The top ``limit`` combinations of a query's dimension values, most events first."""

    limit: int
    combinations: tuple[tuple[str, ...], ...]

    @classmethod
    def rank(cls, query: MetricQuery, limit: int, engine: Engine, renderer: Renderer) -> TopN:
        """Rank the query's combinations in the store (one statement, N rows back)."""
        if not 1 <= limit <= MAX_LIMIT:
            raise QueryError(f"limit: give 1 to {MAX_LIMIT}")
        if not query.dimensions:
            raise QueryError("limit: the top N needs dimensions to rank, e.g. 'connection'")
        for metric in query.metrics:
            if not _adds_up(metric):
                raise QueryError(
                    f"limit: {metric.name} does not add up across "
                    f"{' x '.join(query.dimensions)} values, so no 'other' row can be given; "
                    "ask for it without a limit, filtered to the values you want"
                )
        source = query.metrics[0].source
        assert source is not None  # derived metrics do not add up: refused above
        rows, params = window_rows(query, source)
        columns = [column(DIMENSIONS[d].column) for d in query.dimensions]
        ranked = (
            rows.select(*(c.as_(d) for c, d in zip(columns, query.dimensions, strict=True)))
            .where(*(exp.Not(this=exp.Is(this=c.copy(), expression=exp.Null())) for c in columns))
            .group_by(*(c.copy() for c in columns))
            .order_by(
                exp.Ordered(this=exp.Count(this=exp.Star()), desc=True),
                *(c.copy() for c in columns),
            )
            .limit(limit)
        )
        answer = engine.query(renderer.sql(ranked), params)
        return cls(
            limit, tuple(zip(*(answer[d].to_pylist() for d in query.dimensions), strict=True))
        )

    def fetch(self, query: MetricQuery, fetch: Fetch) -> tuple[Answers, int]:
        """Each statement of ``query`` with its raw result over the top N and "other"."""
        totals, cached = fetch(dataclasses.replace(query, dimensions=()))
        if not self.combinations:  # no event has every dimension value: all is "other"
            return [(s, _fold(query, s, None, t)) for s, t in totals], cached
        chosen = pa.table(
            {
                dim: pa.array([c[i] for c in self.combinations], pa.string())
                for i, dim in enumerate(query.dimensions)
            }
        )
        filters = dict(query.filters)
        for dim in query.dimensions:
            filters[dim] = tuple(sorted(set(chosen[dim].to_pylist())))
        tops, top_cached = fetch(dataclasses.replace(query, filters=tuple(sorted(filters.items()))))
        answers = []
        for (statement, top), (_, total) in zip(tops, totals, strict=True):
            # Per-dimension filters let through every pairing of the top values: keep
            # the top combinations alone.
            exact = top.join(chosen, keys=list(query.dimensions), join_type="inner")
            answers.append((statement, _fold(query, statement, exact, total)))
        return answers, cached + top_cached


def _fold(
    query: MetricQuery, statement: CompiledQuery, top: pa.Table | None, total: pa.Table
) -> pa.Table:
    """The top N's rows and, per bucket, "other": the totals less the top N's sums."""
    parts = sorted({a for p in statement.parts for a in (p.value, p.sample) if a is not None})
    # Figures are read as floats (see _service._floats): the remainders are too.
    as_float = {p: pa.float64() for p in parts}
    keys = [BUCKET_KEY] if query.bucket is not None else [_ALL]
    if query.bucket is None:
        total = total.append_column(_ALL, pa.array([0] * total.num_rows, pa.int8()))
    rest = total.select(keys)
    for part in parts:
        rest = rest.append_column(part, pc.fill_null(total[part].cast(pa.float64()), 0.0))
    if top is not None:
        if query.bucket is None:
            top = top.append_column(_ALL, pa.array([0] * top.num_rows, pa.int8()))
        top = top.cast(pa.schema([f.with_type(as_float.get(f.name, f.type)) for f in top.schema]))
        summed = top.group_by(keys).aggregate([(p, "sum") for p in parts])
        rest = rest.join(summed, keys=keys, join_type="left outer")
        for part in parts:
            remainder = pc.subtract(rest[part], pc.fill_null(rest[f"{part}_sum"], 0.0))
            rest = rest.set_column(rest.schema.get_field_index(part), part, remainder)
    other = {d: pa.array([OTHER] * rest.num_rows, pa.string()) for d in query.dimensions}
    other.update({name: rest[name] for name in (*keys, *parts)})
    folded = pa.table(other)
    if top is not None:
        folded = pa.concat_tables([top.select(folded.column_names), folded])
    return folded if query.bucket is not None else folded.drop_columns([_ALL])


#: A key column every row shares, for a query without buckets (one group: the window).
_ALL = "_all"
