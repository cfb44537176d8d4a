"""Custom statements: queries an analysis shapes itself, run as a metric is.

A metric answers a flat question (one aggregate over one event table, by
dimensions and buckets). An analysis that needs more (a join, columns laid out
for its own computation) builds a :class:`Statement`: a function that builds a
sqlglot query with the engine's :class:`Renderer` (its time buckets and
percentiles), the values bound to the query's placeholders, and the stored
tables it reads. :meth:`MetricService.run_statement` renders it once per
dialect and shape, runs it with its values bound, and caches the result by the
data version of every table it depends on, through the same cache as metric
results. The result's columns are the query's own aliases: the caller names
what it reads.

Conditions that define metrics are not restated: the compiler's
:func:`~banking_analytics.metrics.aggregate` and
:func:`~banking_analytics.metrics.count_condition` give a catalogue metric's
aggregate and the condition on the events it counts, as a compiled query has them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import lru_cache

from sqlglot import exp

from banking_analytics.metrics._render import Renderer
from banking_analytics.store import ALL_TABLES
from banking_analytics.store.statements import column

__all__ = ["Statement", "window_condition"]

#: Builds a statement's query: ``build(renderer, *shape)``.
Builder = Callable[..., exp.Query]

#: The stored tables a statement may read: those with a data version.
_VERSIONED = frozenset(t.name for t in ALL_TABLES if t.versioned)


@dataclass(frozen=True, slots=True)
class Statement:
    """A query an analysis builds, with the values it binds and the tables it reads.

    ``build(renderer, *shape)`` returns the query, its values as positional
    placeholders (``sqlglot.exp.Placeholder()``) to be bound to ``params`` in
    the order they appear in the SQL. It is called once per dialect and shape,
    so ``build`` should be a module-level function and ``shape`` hold only what
    changes the SQL (never a value: values are ``params``). ``depends_on``
    names every stored table the query reads: its result is cached until one of
    them changes.
    """

    build: Builder
    params: tuple[object, ...]
    depends_on: tuple[str, ...]
    shape: tuple[Hashable, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.depends_on) - _VERSIONED)
        if unknown or not self.depends_on:
            raise ValueError(
                f"depends_on must name stored tables with a data version ({sorted(_VERSIONED)}); "
                f"got {unknown or 'none'}"
            )

    def render(self, renderer: Renderer) -> str:
        """The statement's SQL in the renderer's dialect (rendered once per shape), checked
        against its parameters and the tables it declares."""
        rendered = _render(self.build, self.shape, renderer)
        if rendered.placeholders != len(self.params):
            raise ValueError(
                f"{self.build.__name__}: {rendered.placeholders} placeholders "
                f"for {len(self.params)} parameters"
            )
        undeclared = rendered.tables - set(self.depends_on)
        if undeclared:
            # Its result would be served from the cache after those tables changed.
            raise ValueError(
                f"{self.build.__name__} reads {sorted(undeclared)}, which depends_on omits"
            )
        return rendered.sql


def window_condition(name: str = "occurred_at") -> exp.Expr:
    """``name`` within a half-open window ``[?, ?)``: bind its start, then its end."""
    return exp.and_(column(name) >= exp.Placeholder(), column(name) < exp.Placeholder())


@dataclass(frozen=True, slots=True)
class _Rendered:
    sql: str
    placeholders: int
    #: The stored tables the query reads (common table expressions left out).
    tables: frozenset[str]


@lru_cache(maxsize=256)
def _render(build: Builder, shape: tuple[Hashable, ...], renderer: Renderer) -> _Rendered:
    query = build(renderer, *shape)
    named = {cte.alias for cte in query.find_all(exp.CTE)}
    tables = frozenset(t.name for t in query.find_all(exp.Table)) - named
    placeholders = sum(1 for _ in query.find_all(exp.Placeholder))
    return _Rendered(renderer.sql(query), placeholders, tables)
