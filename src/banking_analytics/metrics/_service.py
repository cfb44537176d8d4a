"""Run metric queries and custom statements on an engine, with results cached per data version.

The store keeps a data version per table, raised by the very transaction that
adds rows to it (event tables only grow), so it changes exactly when events are
added. A cached statement is reused while the versions of the tables it reads
are unchanged, so new behaviour events leave cached connection figures alone.
Reading the versions is one look-up by key in a table of a few rows, however
many events there are.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import product
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from numpy.typing import NDArray
from sqlglot import exp

from banking_analytics.metrics._budget import QueryBudget
from banking_analytics.metrics._calendar import bucket_end, bucket_keys, matching_buckets
from banking_analytics.metrics._compile import BUCKET_KEY, CompiledQuery, MetricParts, compile_query
from banking_analytics.metrics._expr import evaluate
from banking_analytics.metrics._model import (
    PERIOD_DAYS,
    Derived,
    Max,
    Mean,
    Metric,
    Min,
    Percentile,
    Provided,
    Ratio,
    Sum,
    Unit,
)
from banking_analytics.metrics._query import MetricQuery
from banking_analytics.metrics._render import Renderer, renderer_for
from banking_analytics.metrics._results import MetricValue, QueryResult, ResultRow, Status
from banking_analytics.metrics._statement import Statement
from banking_analytics.metrics._top import TopN
from banking_analytics.metrics._window import QueryError
from banking_analytics.store import DATA_VERSIONS, DERIVED_TABLES, EVENT_TABLES, Engine
from banking_analytics.store.statements import column
from banking_analytics.store.statements import table as table_of

__all__ = ["DataVersions", "MetricProvider", "MetricService", "to_records"]

#: The tables :meth:`MetricService.versions` reads by default.
_EVENT_DATA = (*EVENT_TABLES, *(d.table.name for d in DERIVED_TABLES))

#: Each table's data version, by table name.
DataVersions = Mapping[str, int]
#: An analysis answering provided metrics (:class:`Provided`): given a query of only its
#: metrics (already checked against their dimensions), one row per bucket x dimension
#: values it has figures for. It reads the data versions it needs itself.
MetricProvider = Callable[[MetricQuery], Iterable[ResultRow]]
#: A result row's key: its bucket's start in microseconds since the epoch (None without
#: a bucket: integers compare and hash faster than times) and its dimension values.
_Key = tuple[int | None, tuple[str | None, ...]]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(slots=True)
class _Answer:
    """A statement's result, and each metric's figures once they have been read from it.

    The figures are kept with the result: a dashboard asking again reads them
    instead of computing them again (for a small result, computing costs more
    than the look-up of the result itself).
    """

    table: pa.Table
    figures: dict[MetricParts, list[MetricValue]] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """The table's bytes and an estimate of the figures' (a small tuple each)."""
        table_bytes: int = self.table.nbytes
        rows: int = self.table.num_rows
        return table_bytes + _FIGURE_BYTES * rows * len(self.figures)

    def figures_of(self, parts: MetricParts) -> list[MetricValue]:
        """One metric's figure on every row."""
        found = self.figures.get(parts)
        if found is None:
            # Two threads may compute the same figures at once; either result serves.
            found = self.figures.setdefault(parts, _figures(parts, self.table))
        return found


#: About what one figure (a MetricValue with its float) occupies.
_FIGURE_BYTES = 100


class _LRUCache:
    """Least recently used answers, bounded in count and in bytes (answers vary in size)."""

    def __init__(self, size: int, max_bytes: int) -> None:
        self._size = size
        self._max_bytes = max_bytes
        self._items: OrderedDict[tuple[object, ...], _Answer] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...]) -> _Answer | None:
        with self._lock:
            answer = self._items.get(key)
            if answer is not None:
                self._items.move_to_end(key)
            return answer

    def put(self, key: tuple[object, ...], answer: _Answer) -> None:
        with self._lock:
            self._items.pop(key, None)
            self._items[key] = answer
            # Summed afresh: answers grow after they are put, as figures are read from them.
            total = sum(item.nbytes for item in self._items.values())
            while self._items and (len(self._items) > self._size or total > self._max_bytes):
                _, evicted = self._items.popitem(last=False)
                total -= evicted.nbytes


class MetricService:
    """Compiles metric queries for an engine's dialect, runs them and caches the answers."""

    def __init__(
        self, engine: Engine, *, cache_size: int = 512, cache_bytes: int = 256 * 2**20
    ) -> None:
        self._engine = engine
        self._renderer = renderer_for(engine.dialect)
        self._cache = _LRUCache(cache_size, cache_bytes)
        self._providers: dict[str, MetricProvider] = {}

    def provide(self, name: str, provider: MetricProvider) -> None:
        """Answer the metrics provided by ``name`` (:class:`Provided`) with ``provider``:
        an analysis above this layer, such as the subscription ledger's revenue metrics."""
        self._providers[name] = provider

    def compile(self, query: MetricQuery) -> tuple[CompiledQuery, ...]:
        return compile_query(query, self._renderer)

    def versions(self, tables: Iterable[str] | None = None) -> dict[str, int]:
        """The current data version of each named table (by default every event table, and
        every table the store derives from one).

        One read of the store's versions table by its key, whatever the size of
        the event tables. A name the store keeps no version for is a ``ValueError``.
        Named tables are brought up to date first (the sessions the store keeps merge the
        events waiting for them: :meth:`~banking_analytics.store.Engine.bring_up_to_date`).
        """
        chosen = _EVENT_DATA if tables is None else tuple(dict.fromkeys(tables))
        if not chosen:
            return {}
        if tables is not None:
            # A table named is about to be read: the store brings it up to date first.
            self._engine.bring_up_to_date(chosen)
        stored = self._engine.query(_versions_sql(self._renderer, len(chosen)), chosen)
        found = dict(
            zip(stored["table_name"].to_pylist(), stored["version"].to_pylist(), strict=True)
        )
        missing = [name for name in chosen if name not in found]
        if missing:
            raise ValueError(f"no data version for table(s) {', '.join(missing)} in this store")
        return {name: int(found[name]) for name in chosen}

    def _versions_for(self, query: MetricQuery) -> dict[str, int]:
        return _versions_of(self, self.compile(query))

    def run(
        self,
        query: MetricQuery,
        *,
        compare: bool = False,
        fill_gaps: bool = True,
        versions: DataVersions | None = None,
        budget: QueryBudget | None = None,
        limit: int | None = None,
    ) -> QueryResult:
        """Answer a query; with ``compare``, each row also carries the previous period's figures.

        A bucketed query has a row for every bucket of the window (for every
        dimension combination seen) unless ``fill_gaps`` is false, when buckets
        without events are left out. ``versions`` lets several queries share
        one reading of the data versions. A query that could answer more than
        ``budget`` allows is refused before it runs (:class:`QueryTooLargeError`);
        ``limit`` answers the top N dimension-value combinations and "other"
        (see :class:`TopN`).
        """
        provided = [m.name for m in query.metrics if isinstance(m.measure, Provided)]
        if provided and limit is not None:
            raise QueryError(f"limit: {', '.join(provided)} cannot be cut to the top N")
        if budget is not None:
            budget.check(query, self._engine, self._renderer, compare=compare, limit=limit)
        top = None if limit is None else TopN.rank(query, limit, self._engine, self._renderer)
        if versions is None:
            versions = self._versions_for(query)
        rows, cached = self._rows(query, versions, fill_gaps, top)
        if compare:
            earlier = query.with_window(query.window.previous())
            previous_rows, previous_cached = self._rows(earlier, versions, fill_gaps, top)
            cached += previous_cached
            # Bucket by bucket, counted from the window's end: months differ in length.
            later = (
                matching_buckets(earlier.window, query.window, query.bucket, query.timezone)
                if query.bucket is not None
                else {}
            )
            blanks = _blanks(query.metrics)
            by_key = {
                (later.get(r.bucket) if r.bucket else None, _dims(r)): r for r in previous_rows
            }
            rows = [
                ResultRow(
                    r.bucket,
                    r.dimensions,
                    r.values,
                    by_key[key].values if (key := (r.bucket, _dims(r))) in by_key else blanks,
                )
                for r in rows
            ]
        return QueryResult(query, tuple(rows), cached)

    def fetch(
        self, query: MetricQuery, versions: DataVersions | None = None
    ) -> tuple[list[tuple[CompiledQuery, pa.Table]], int]:
        """Each statement of a query with its raw result (bucket, dimensions, aggregate parts),
        and how many came from the cache: for analyses that consume whole columns.
        """
        answers, cached = self._answers(query, versions)
        return [(statement, answer.table) for statement, answer in answers], cached

    def _answers(
        self, query: MetricQuery, versions: DataVersions | None
    ) -> tuple[list[tuple[CompiledQuery, _Answer]], int]:
        statements = self.compile(query)
        if versions is None:
            versions = _versions_of(self, statements)
        answers = []
        cached = 0
        for statement in statements:
            answer, hit = self._answer(
                statement.sql,
                statement.params,
                tuple(versions[table] for table in statement.depends_on),
            )
            cached += hit
            answers.append((statement, answer))
        return answers, cached

    def run_statement(self, statement: Statement, versions: DataVersions | None = None) -> pa.Table:
        """A custom statement's result, its columns named by the statement's select.

        The statement is rendered once per shape for the engine's dialect, runs with its
        parameters bound, and its result is cached like a metric's, until a table it
        depends on changes. ``versions`` lets several queries share one reading.
        """
        sql = statement.render(self._renderer)
        if versions is None:
            versions = self.versions(statement.depends_on)
        version = tuple(versions[table] for table in statement.depends_on)
        answer, _ = self._answer(sql, statement.params, version)
        return answer.table

    def _answer(
        self, sql: str, params: tuple[object, ...], version: object
    ) -> tuple[_Answer, bool]:
        """A statement's answer, from the cache while the data it reads is at ``version``
        (the metric path's and custom statements' one way to the engine); and whether it
        came from the cache."""
        key = (sql, params, version)
        answer = self._cache.get(key)
        if answer is not None:
            return answer, True
        answer = _Answer(self._engine.query(sql, params))
        self._cache.put(key, answer)
        return answer, False

    def _provided(self, query: MetricQuery) -> Iterable[ResultRow]:
        """The rows of the query's provided metrics, from their providers."""
        by_provider: dict[str, list[Metric]] = {}
        for metric in query.metrics:
            if isinstance(metric.measure, Provided):
                by_provider.setdefault(metric.measure.provider, []).append(metric)
        for name, metrics in by_provider.items():
            provider = self._providers.get(name)
            if provider is None:
                raise QueryError(
                    f"{', '.join(m.name for m in metrics)}: computed by the {name}, which "
                    "this metric service has not been given"
                )
            yield from provider(replace(query, metrics=tuple(metrics)))

    def _rows(
        self, query: MetricQuery, versions: DataVersions, fill_gaps: bool, top: TopN | None
    ) -> tuple[list[ResultRow], int]:
        if top is None:
            answers, cached = self._answers(query, versions)
        else:
            tables, cached = top.fetch(query, lambda q: self.fetch(q, versions))
            answers = [(statement, _Answer(table)) for statement, table in tables]
        # Figures are computed a whole column at a time; only the assembly into rows is
        # per row. Rows of several statements (one per source) meet by their keys.
        found: dict[_Key, dict[str, MetricValue]] = {}
        for statement, answer in answers:
            keys = _row_keys(answer.table, query)
            names = [p.metric.name for p in statement.parts]
            columns = zip(*(answer.figures_of(p) for p in statement.parts), strict=True)
            if not found:  # the usual case: one statement, whose keys are all new
                found = {
                    key: dict(zip(names, values, strict=True))
                    for key, values in zip(keys, columns, strict=True)
                }
                continue
            for key, values in zip(keys, columns, strict=True):
                found.setdefault(key, {}).update(zip(names, values, strict=True))
        for row in self._provided(query):
            key = (_microseconds(row.bucket), tuple(row.dimensions[d] for d in query.dimensions))
            found.setdefault(key, {}).update(row.values)
        if query.bucket is not None and fill_gaps:
            for row_key in _all_buckets(query, {k[1] for k in found}):
                if row_key not in found:
                    found[row_key] = {}
        blanks = _blanks(m for wanted in query.metrics for m in wanted.inputs)
        derived = [m for m in query.metrics if isinstance(m.measure, Derived)]
        # Without dimensions a key is (bucket, ()): plain tuples, which sort faster.
        ordered = sorted(found.items(), key=_sort_key if query.dimensions else _first)
        if not derived and list(blanks) == [m.name for m in query.metrics]:
            return [
                ResultRow(
                    _instant(bucket),
                    dict(zip(query.dimensions, dims, strict=True)),
                    {name: values.get(name, blank) for name, blank in blanks.items()},
                )
                for (bucket, dims), values in ordered
            ], cached
        rows: list[ResultRow] = []
        for (bucket, dims), computed in ordered:
            figures = {name: computed.get(name, blank) for name, blank in blanks.items()}
            for metric in derived:
                figures[metric.name] = _derive(metric, figures, _days(query, _instant(bucket)))
            rows.append(
                ResultRow(
                    _instant(bucket),
                    dict(zip(query.dimensions, dims, strict=True)),
                    {m.name: figures[m.name] for m in query.metrics},
                )
            )
        return rows, cached


def _microseconds(bucket: datetime | None) -> int | None:
    """A bucket's key from its start (the inverse of :func:`_instant`)."""
    return None if bucket is None else (bucket - _EPOCH) // _MICROSECOND


def _versions_of(service: MetricService, statements: Iterable[CompiledQuery]) -> dict[str, int]:
    """The data versions of every table the statements read, in one reading."""
    return service.versions(t for s in statements for t in s.depends_on)


@lru_cache(maxsize=64)
def _versions_sql(renderer: Renderer, count: int) -> str:
    """The versions of ``count`` tables, named by parameters: a look-up by primary key
    (built once per count: every request reads it)."""
    name = column("table_name")
    lookup = (
        sqlglot.select(name, column("version"))
        .from_(table_of(DATA_VERSIONS))
        .where(name.copy().isin(*(exp.Placeholder() for _ in range(count))))
    )
    return renderer.sql(lookup)


def _python_values(column: pa.ChunkedArray) -> list[Any]:
    """A column's values as Python objects, zoned times as aware UTC datetimes.

    pyarrow converts zoned timestamps through pandas (importing it, a fifth of a
    second, on first use); naive UTC values converted directly are the same instants.
    """
    kind = column.type
    if pa.types.is_timestamp(kind) and kind.tz:
        naive = column.cast(pa.timestamp(kind.unit)).to_pylist()
        return [None if at is None else at.replace(tzinfo=UTC) for at in naive]
    values: list[Any] = column.to_pylist()
    return values


def to_records(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as dictionaries, times as aware UTC datetimes (see :func:`_python_values`)."""
    names = table.column_names
    columns = [_python_values(table[name]) for name in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def bucket_microseconds(table: pa.Table) -> pa.ChunkedArray:
    """A bucketed result's bucket starts as microseconds since the epoch."""
    return table[BUCKET_KEY].cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())


def _row_keys(table: pa.Table, query: MetricQuery) -> list[_Key]:
    """Each result row's key: its bucket (or None) and its dimension values."""
    buckets: list[int | None] = (
        bucket_microseconds(table).to_pylist()
        if query.bucket is not None
        else [None] * table.num_rows
    )
    if not query.dimensions:
        return [(bucket, ()) for bucket in buckets]
    dims = zip(*(table[d].to_pylist() for d in query.dimensions), strict=True)
    return list(zip(buckets, dims, strict=True))


def _instant(microseconds: int | None) -> datetime | None:
    """A bucket's start from its key."""
    return None if microseconds is None else _EPOCH + microseconds * _MICROSECOND


def _first(item: tuple[_Key, object]) -> _Key:
    return item[0]


def _sort_key(item: tuple[_Key, object]) -> tuple[object, ...]:
    # Buckets in time order; within one, dimension values in order with missing ones first.
    (bucket, dims), _ = item
    return (bucket or 0, *((d is not None, d or "") for d in dims))


def _dims(row: ResultRow) -> tuple[str | None, ...]:
    return tuple(row.dimensions.values())


def _days(query: MetricQuery, bucket: datetime | None) -> float:
    """Length in days of the part of the window a row covers (for per-day rates)."""
    if bucket is None or query.bucket is None:
        return query.window.days
    start = max(bucket, query.window.start)
    end = min(bucket_end(bucket, query.bucket, query.timezone), query.window.end)
    return max((end - start) / timedelta(days=1), 0.0)


# Enum members looked up once: rows are built by the thousand.
_OK = Status.OK
_INSUFFICIENT = Status.INSUFFICIENT_DATA


def _floats(column: pa.ChunkedArray) -> NDArray[np.float64]:
    """A numeric column as floats, missing values as 0 (sums over no rows are NULL)."""
    values: NDArray[np.float64] = pc.fill_null(
        column.cast(pa.float64(), safe=False), 0.0
    ).to_numpy()
    return values


def _figures(parts: MetricParts, table: pa.Table) -> list[MetricValue]:
    """One metric's figure on every row of its statement's result.

    Counts and sums stand as they are; a mean or ratio is its value part ÷ its
    sample; a figure resting on fewer than ``min_sample`` events is not given.
    """
    metric = parts.metric
    measure = metric.measure
    if isinstance(measure, Max | Min):
        return [
            MetricValue(v, None, _OK if v is not None else _INSUFFICIENT)
            for v in _python_values(table[parts.value])
        ]
    value = table[parts.value]
    figures = _floats(value if parts.index is None else pc.list_element(value, parts.index))
    if parts.sample is None:
        if _whole(metric):
            return [MetricValue(t, None, _OK) for t in np.rint(figures).astype(np.int64).tolist()]
        return [MetricValue(t, None, _OK) for t in figures.tolist()]
    if not isinstance(measure, Mean | Percentile | Ratio):
        raise AssertionError(f"{type(measure).__name__} has no sample")
    sample = _floats(table[parts.sample]).astype(np.int64)
    usable = sample >= max(metric.min_sample, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if not isinstance(measure, Percentile):
            figures = figures / sample
    return [
        MetricValue(f, n, _OK) if ok else MetricValue(None, n, _INSUFFICIENT)
        for f, n, ok in zip(figures.tolist(), sample.tolist(), usable.tolist(), strict=True)
    ]


def _whole(metric: Metric) -> bool:
    """Whether a total is a whole number: a count, or a sum of money in minor units."""
    return metric.unit is Unit.MINOR_UNITS or not isinstance(metric.measure, Sum)


def _blanks(metrics: Iterable[Metric]) -> dict[str, MetricValue]:
    """Each computed metric's figure where there are no events (see :func:`_blank`)."""
    return {m.name: _blank(m) for m in metrics}


def _blank(metric: Metric) -> MetricValue:
    """A metric's figure on a row its statement has none for (no events there): no
    value for a latest or earliest time, zero for a count or sum, and no value
    (from a sample of zero) for a rate, mean or percentile."""
    measure = metric.measure
    if isinstance(measure, Max | Min | Derived | Provided):
        return MetricValue(None, None, _INSUFFICIENT)
    if isinstance(measure, Mean | Percentile | Ratio):
        return MetricValue(None, 0, _INSUFFICIENT)
    return MetricValue(0 if _whole(metric) else 0.0, None, _OK)


def _derive(metric: Metric, figures: Mapping[str, MetricValue], days: float) -> MetricValue:
    """A derived metric's figure from its inputs' figures on the same row.

    No value when an input has none or the arithmetic has none (a division by
    zero); the sample is the smallest of the inputs' samples, where they have one.
    """
    measure = metric.measure
    assert isinstance(measure, Derived)
    inputs = [figures[m.name] for m in measure.inputs]
    samples = [f.sample_size for f in inputs if f.sample_size is not None]
    sample = min(samples) if samples else None
    known: dict[str, float | None] = {PERIOD_DAYS: days if days > 0 else None}
    for m, figure in zip(measure.inputs, inputs, strict=True):
        ok = figure.status is _OK and isinstance(figure.value, int | float)
        known[m.name] = float(figure.value) if ok else None  # type: ignore[arg-type]
    value = evaluate(measure.formula, known)
    if value is None or not math.isfinite(value):
        return MetricValue(None, sample, _INSUFFICIENT)
    return MetricValue(value, sample, _OK)


def _all_buckets(query: MetricQuery, dims: set[tuple[str | None, ...]]) -> list[_Key]:
    """Every bucket of the window, for every dimension combination seen (or none)."""
    assert query.bucket is not None
    combos = dims or ({()} if not query.dimensions else set())
    return list(product(bucket_keys(query.window, query.bucket, query.timezone), combos))
