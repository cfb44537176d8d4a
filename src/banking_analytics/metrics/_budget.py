"""A bound on how much one metric query may answer, checked before the query runs.

A bucketed answer has a row for every bucket of the window and every combination
of dimension values seen in it (gaps are filled), and a figure per metric in each
row, so its size in cells is

    cells = buckets x combinations x metrics (x 2 with a comparison to the previous period)

with ``buckets = ⌈window ÷ bucket width⌉ + 1`` (an upper bound: the first and
last bucket may be partial; 1 without a bucket). Combinations are counted in
the store by a bounded probe: the distinct dimension values of the window's
events that pass the query's filters, ``SELECT count(*) FROM (SELECT DISTINCT
<dimensions> ... LIMIT k)`` with ``k`` one more than the budget allows, so only
one number comes back however many there are. With ``limit`` (top-N) there are
at most N + 1 combinations (the top N and "other") and nothing is probed.

A query over the budget is refused with :class:`QueryTooLargeError`, which says
by how much and how to narrow it. The budget is for queries a caller shapes;
the analyses' own queries (dashboards, health, freshness) are bounded by their
code and do not pass one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from banking_analytics.metrics._calendar import bucket_count
from banking_analytics.metrics._model import DIMENSIONS
from banking_analytics.metrics._query import MetricQuery
from banking_analytics.metrics._render import Renderer
from banking_analytics.metrics._source import Source
from banking_analytics.metrics._window import Bucket, QueryError
from banking_analytics.store import Engine
from banking_analytics.store.statements import column

__all__ = [
    "DEFAULT_MAX_CELLS",
    "QueryBudget",
    "QueryTooLargeError",
    "answer_buckets",
    "window_rows",
]

#: Cells one query may answer by default. An answer costs the server about 2 kB per
#: row on its way to JSON (the issue's 1.3M rows took 3.2 GB), so this bounds one
#: answer to a few hundred MB at worst; the dashboards' own series (at most 10,000
#: buckets x 3 metrics) fit in it whatever their window.
DEFAULT_MAX_CELLS = 200_000


class QueryTooLargeError(QueryError):
    """A query whose answer would have more cells than the budget allows."""

    def __init__(self, message: str, *, max_cells: int, cells_at_least: int) -> None:
        super().__init__(message)
        self.max_cells = max_cells
        self.cells_at_least = cells_at_least


def answer_buckets(query: MetricQuery) -> int:
    """Buckets the query's answer has, at most (1 without a bucket): the window's buckets
    (see :func:`bucket_count`), one more for a window that does not start on a boundary."""
    if query.bucket is None:
        return 1
    return math.ceil(bucket_count(query.window, query.bucket, query.timezone)) + 1


def window_rows(query: MetricQuery, source: Source) -> tuple[exp.Select, tuple[object, ...]]:
    """A statement reading ``source``'s rows in the query's window that pass its
    filters (its select list still to add), and its parameters: window start and
    end, then each filter's values."""
    where: list[exp.Expr] = [
        column(source.time_column) >= exp.Placeholder(),
        column(source.time_column) < exp.Placeholder(),
    ]
    for dim, values in query.filters:
        where.append(column(DIMENSIONS[dim].column).isin(*(exp.Placeholder() for _ in values)))
    statement = exp.Select().from_(source.from_clause()).where(exp.and_(*where))
    params = (
        query.window.start,
        query.window.end,
        *(value for _, values in query.filters for value in values),
    )
    return statement, params


def _count_combinations(
    query: MetricQuery, engine: Engine, renderer: Renderer, at_most: int
) -> int:
    """Distinct dimension-value combinations of the query's events, counted up to
    ``at_most`` (summed over the event tables read: an upper bound of their union)."""
    found = 0
    for source in _sources(query):
        rows, params = window_rows(query, source)
        distinct = (
            rows.select(*(column(DIMENSIONS[d].column) for d in query.dimensions))
            .distinct()
            .limit(at_most - found)
        )
        counted = sqlglot.select(exp.Count(this=exp.Star()).as_("combinations")).from_(
            distinct.subquery("combinations")
        )
        answer = engine.query(renderer.sql(counted), params)
        found += int(answer["combinations"][0].as_py())
        if found >= at_most:
            break
    return found


def _sources(query: MetricQuery) -> list[Source]:
    """The sources a query's metrics (a derived metric's inputs) are computed over."""
    found = (m.source for asked in query.metrics for m in asked.inputs)
    return list(dict.fromkeys(s for s in found if s is not None))


@dataclass(frozen=True, slots=True)
class QueryBudget:
    """At most ``max_cells`` cells (rows x metrics) in one query's answer."""

    max_cells: int = DEFAULT_MAX_CELLS

    def __post_init__(self) -> None:
        if self.max_cells < 1:
            raise ValueError(f"max_cells must be at least 1, got {self.max_cells}")

    def check(
        self,
        query: MetricQuery,
        engine: Engine,
        renderer: Renderer,
        *,
        compare: bool = False,
        limit: int | None = None,
    ) -> None:
        """Raise :class:`QueryTooLargeError` if the answer could exceed the budget.

        ``limit`` is the top-N asked for, if any (N combinations and "other").
        """
        buckets = answer_buckets(query)
        per_combination = buckets * len(query.metrics) * (2 if compare else 1)
        shape = f"{buckets:,} {query.bucket.value} buckets x " if query.bucket else ""
        metrics = f"{len(query.metrics)} metric{'s' if len(query.metrics) > 1 else ''}"
        if compare:
            metrics += " x 2 periods"
        if per_combination > self.max_cells:
            raise QueryTooLargeError(
                f"the answer would have {per_combination:,} cells ({shape}{metrics}) even "
                f"for a single combination of dimension values, more than the limit of "
                f"{self.max_cells:,} cells per query; narrow it: "
                f"{_narrower(query, limit, per_combination=True)}",
                max_cells=self.max_cells,
                cells_at_least=per_combination,
            )
        if not query.dimensions:
            return
        allowed = self.max_cells // per_combination
        if limit is not None:
            combinations = limit + 1
        else:
            combinations = _count_combinations(query, engine, renderer, allowed + 1)
        if combinations <= allowed:
            return
        dims = " x ".join(query.dimensions)
        counted = f"{combinations:,}" if limit is not None else f"more than {allowed:,}"
        raise QueryTooLargeError(
            f"the answer would have more than {self.max_cells:,} cells, the limit per query "
            f"({shape}{counted} {dims} values x {metrics}); narrow it: {_narrower(query, limit)}",
            max_cells=self.max_cells,
            cells_at_least=combinations * per_combination,
        )


def _narrower(query: MetricQuery, limit: int | None, *, per_combination: bool = False) -> str:
    """The ways to make the query smaller, for the refusal's message."""
    ways = []
    coarser = _coarser(query.bucket)
    if coarser is not None:
        ways.append(f"a coarser bucket ({coarser.value!r})")
    ways.append("a shorter window")
    if per_combination:
        ways.append("fewer metrics")
        return ", ".join(ways)
    if len(query.dimensions) > 1:
        ways.append("fewer dimensions")
    last = query.dimensions[-1]
    ways.append(f"a filter (filters.{last})")
    if limit is None:
        ways.append(f'"limit": N for the top N {last} values and an "other" row')
    else:
        ways.append(f"a limit below {limit}")
    return ", ".join(ways)


def _coarser(bucket: Bucket | None) -> Bucket | None:
    """The next wider bucket, if there is one."""
    if bucket is None:
        return None
    order = list(Bucket)
    position = order.index(bucket)
    return order[position + 1] if position + 1 < len(order) else None
