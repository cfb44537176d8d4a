"""Run metric queries on an engine, with results cached per data version.

The store keeps a data version per table, raised by the very transaction that
adds rows to it (event tables only grow), so it changes exactly when events are
added. A cached statement is reused while the version of the one table it reads
is unchanged, so new behaviour events leave cached connection figures alone.
Reading the versions is one look-up by key in a table of a few rows, however
many events there are.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import product
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from numpy.typing import NDArray
from sqlglot import exp

from banking_analytics.events import SCHEMAS
from banking_analytics.metrics._compile import BUCKET_KEY, CompiledQuery, MetricParts, compile_query
from banking_analytics.metrics._model import Max, Mean, Metric, Percentile, Ratio, Sum, Unit
from banking_analytics.metrics._query import MetricQuery
from banking_analytics.metrics._render import Renderer, renderer_for
from banking_analytics.metrics._results import MetricValue, QueryResult, ResultRow, Status
from banking_analytics.metrics._window import Bucket, TimeWindow
from banking_analytics.store import DATA_VERSIONS, EVENT_TABLES, Engine
from banking_analytics.store.statements import column
from banking_analytics.store.statements import table as table_of

__all__ = ["DataVersions", "MetricService", "bucket_microseconds", "bucket_starts", "to_records"]

#: Each table's data version, by table name.
DataVersions = Mapping[str, int]
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

    def figures_of(self, parts: MetricParts, days: NDArray[np.float64] | None) -> list[MetricValue]:
        """One metric's figure on every row (``days``: see :func:`_figures`)."""
        found = self.figures.get(parts)
        if found is None:
            # Two threads may compute the same figures at once; either result serves.
            found = self.figures.setdefault(parts, _figures(parts, self.table, days))
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

    def compile(self, query: MetricQuery) -> tuple[CompiledQuery, ...]:
        return compile_query(query, self._renderer)

    def versions(self, tables: Iterable[str] | None = None) -> dict[str, int]:
        """The current data version of each named table (every event table by default).

        One read of the store's versions table by its key, whatever the size of
        the event tables. A name the store keeps no version for is a ``ValueError``.
        """
        chosen = tuple(EVENT_TABLES) if tables is None else tuple(dict.fromkeys(tables))
        if not chosen:
            return {}
        stored = self._engine.query(_versions_sql(self._renderer, len(chosen)), chosen)
        found = dict(
            zip(stored["table_name"].to_pylist(), stored["version"].to_pylist(), strict=True)
        )
        missing = [name for name in chosen if name not in found]
        if missing:
            raise ValueError(f"no data version for table(s) {', '.join(missing)} in this store")
        return {name: int(found[name]) for name in chosen}

    def run(
        self,
        query: MetricQuery,
        *,
        compare: bool = False,
        fill_gaps: bool = True,
        versions: DataVersions | None = None,
    ) -> QueryResult:
        """Answer a query; with ``compare``, each row also carries the previous period's figures.

        A bucketed query has a row for every bucket of the window (for every
        dimension combination seen) unless ``fill_gaps`` is false, when buckets
        without events are left out. ``versions`` lets several queries share
        one reading of the data versions.
        """
        if versions is None:
            versions = self.versions(SCHEMAS[m.event_type].table for m in query.metrics)
        rows, cached = self._rows(query, versions, fill_gaps)
        if compare:
            earlier = query.with_window(query.window.previous())
            previous_rows, previous_cached = self._rows(earlier, versions, fill_gaps)
            cached += previous_cached
            shift = query.window.length
            blanks = _blanks(self.compile(query))
            by_key = {(r.bucket + shift if r.bucket else None, _dims(r)): r for r in previous_rows}
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
        if versions is None:
            versions = self.versions(SCHEMAS[m.event_type].table for m in query.metrics)
        answers = []
        cached = 0
        for statement in self.compile(query):
            key = (statement.sql, statement.params, versions[statement.table])
            answer = self._cache.get(key)
            if answer is None:
                answer = _Answer(self._engine.query(statement.sql, statement.params))
                self._cache.put(key, answer)
            else:
                cached += 1
            answers.append((statement, answer))
        return answers, cached

    def _rows(
        self, query: MetricQuery, versions: DataVersions, fill_gaps: bool
    ) -> tuple[list[ResultRow], int]:
        answers, cached = self._answers(query, versions)
        # Figures are computed a whole column at a time; only the assembly into rows is
        # per row. Rows of several statements (one per event table) meet by their keys.
        found: dict[_Key, dict[str, MetricValue]] = {}
        for statement, answer in answers:
            table = answer.table
            keys = _row_keys(table, query)
            days = (
                np.array([_days(query, _instant(at)) for at, _ in keys], dtype=np.float64)
                if any(_per_day(p.metric) for p in statement.parts)
                else None
            )
            names = [p.metric.name for p in statement.parts]
            columns = zip(*(answer.figures_of(p, days) for p in statement.parts), strict=True)
            if not found:  # the usual case: one statement, whose keys are all new
                found = {
                    key: dict(zip(names, values, strict=True))
                    for key, values in zip(keys, columns, strict=True)
                }
                continue
            for key, values in zip(keys, columns, strict=True):
                found.setdefault(key, {}).update(zip(names, values, strict=True))
        if query.bucket is not None and fill_gaps:
            for row_key in _all_buckets(query, {k[1] for k in found}):
                if row_key not in found:
                    found[row_key] = {}
        blanks = _blanks(statement for statement, _ in answers)
        # Without dimensions a key is (bucket, ()): plain tuples, which sort faster.
        ordered = sorted(found.items(), key=_sort_key if query.dimensions else _first)
        rows = [
            ResultRow(
                _instant(bucket),
                dict(zip(query.dimensions, dims, strict=True)),
                {name: values.get(name, blank) for name, blank in blanks.items()},
            )
            for (bucket, dims), values in ordered
        ]
        return rows, cached


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
    end = min(bucket + query.bucket.width, query.window.end)
    return max((end - start) / timedelta(days=1), 0.0)


# Enum members looked up once: rows are built by the thousand.
_OK = Status.OK
_INSUFFICIENT = Status.INSUFFICIENT_DATA


def _per_day(metric: Metric) -> bool:
    return isinstance(metric.measure, Ratio) and metric.measure.per_day


def _floats(column: pa.ChunkedArray) -> NDArray[np.float64]:
    """A numeric column as floats, missing values as 0 (sums over no rows are NULL)."""
    values: NDArray[np.float64] = pc.fill_null(
        column.cast(pa.float64(), safe=False), 0.0
    ).to_numpy()
    return values


def _figures(
    parts: MetricParts, table: pa.Table, days: NDArray[np.float64] | None
) -> list[MetricValue]:
    """One metric's figure on every row of its statement's result.

    ``days`` is the length of the span each row covers (per-day rates only).
    Counts and sums stand as they are; a mean or ratio is its value part ÷ its
    sample; a figure resting on fewer than ``min_sample`` events is not given.
    """
    metric = parts.metric
    measure = metric.measure
    if isinstance(measure, Max):
        return [
            MetricValue(v, None, _OK if v is not None else _INSUFFICIENT)
            for v in _python_values(table[parts.value])
        ]
    value = table[parts.value]
    figures = _floats(value if parts.index is None else pc.list_element(value, parts.index))
    if parts.sample is None:
        if _whole(parts):
            return [MetricValue(t, None, _OK) for t in np.rint(figures).astype(np.int64).tolist()]
        return [MetricValue(t, None, _OK) for t in figures.tolist()]
    if not isinstance(measure, Mean | Percentile | Ratio):
        raise AssertionError(f"{type(measure).__name__} has no sample")
    sample = _floats(table[parts.sample]).astype(np.int64)
    usable = sample >= max(metric.min_sample, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if not isinstance(measure, Percentile):
            figures = figures / sample
        if days is not None and _per_day(metric):
            figures = figures / days
            usable &= days > 0
    return [
        MetricValue(f, n, _OK) if ok else MetricValue(None, n, _INSUFFICIENT)
        for f, n, ok in zip(figures.tolist(), sample.tolist(), usable.tolist(), strict=True)
    ]


def _whole(parts: MetricParts) -> bool:
    """Whether a total is a whole number: a count, or a sum of money in minor units."""
    return parts.metric.unit is Unit.MINOR_UNITS or not isinstance(parts.metric.measure, Sum)


def _blanks(statements: Iterable[CompiledQuery]) -> dict[str, MetricValue]:
    """Every metric's figure where there are no events (see :func:`_blank`)."""
    return {p.metric.name: _blank(p) for statement in statements for p in statement.parts}


def _blank(parts: MetricParts) -> MetricValue:
    """A metric's figure on a row its statement has none for (no events there)."""
    if isinstance(parts.metric.measure, Max):
        return MetricValue(None, None, _INSUFFICIENT)
    if parts.sample is None:
        return MetricValue(0 if _whole(parts) else 0.0, None, _OK)
    return MetricValue(None, 0, _INSUFFICIENT)


def _all_buckets(query: MetricQuery, dims: set[tuple[str | None, ...]]) -> list[_Key]:
    """Every bucket of the window, for every dimension combination seen (or none)."""
    assert query.bucket is not None
    combos = dims or ({()} if not query.dimensions else set())
    return [(start, combo) for start, combo in product(_bucket_keys(query), combos)]


def _bucket_keys(query: MetricQuery) -> Iterable[int]:
    """The start of every bucket of the window, in microseconds since the epoch."""
    assert query.bucket is not None
    if _fixed_width(query.bucket, query.timezone):  # integers all the way (hourly: 2,160)
        return _fixed_width_keys(query.window, query.bucket)
    return [
        (start - _EPOCH) // _MICROSECOND
        for start in bucket_starts(query.window, query.bucket, query.timezone)
    ]


def _fixed_width_keys(window: TimeWindow, bucket: Bucket) -> range:
    """Bucket starts, in microseconds since the epoch, of a fixed-width cut of ``window``:
    from the one holding its start to the last that starts before its end."""
    width = bucket.width // _MICROSECOND
    first = (window.start - _EPOCH) // _MICROSECOND // width * width
    return range(first, (window.end - _EPOCH) // _MICROSECOND, width)


def _fixed_width(bucket: Bucket, timezone: str) -> bool:
    """Whether buckets are a fixed width from the epoch: every UTC one but the week,
    which starts on Monday."""
    return timezone == "UTC" and bucket is not Bucket.WEEK


def bucket_starts(window: TimeWindow, bucket: Bucket, timezone: str) -> list[datetime]:
    """The start of every bucket that overlaps the window, as the engines truncate time.

    A bucket starts at the wall-clock truncation of an instant in ``timezone``;
    the window is walked in steps no wider than an hour so that days of 23 or
    25 hours (daylight saving) are cut where the engines cut them.
    """
    if _fixed_width(bucket, timezone):
        return [_EPOCH + at * _MICROSECOND for at in _fixed_width_keys(window, bucket)]
    zone = ZoneInfo(timezone)
    step = min(bucket.width, timedelta(hours=1))
    starts: dict[datetime, None] = {}
    at = window.start
    while at < window.end:
        starts[_truncate(at, bucket, zone)] = None
        at += step
    # The walk can step past the start of the last, partial bucket.
    starts[_truncate(window.end - timedelta(microseconds=1), bucket, zone)] = None
    return list(starts)


def _truncate(at: datetime, bucket: Bucket, zone: ZoneInfo) -> datetime:
    local = at.astimezone(zone).replace(tzinfo=None)
    match bucket:
        case Bucket.MINUTE:
            local = local.replace(second=0, microsecond=0)
        case Bucket.QUARTER_HOUR:
            local = local.replace(minute=local.minute - local.minute % 15, second=0, microsecond=0)
        case Bucket.HOUR:
            local = local.replace(minute=0, second=0, microsecond=0)
        case Bucket.DAY:
            local = local.replace(hour=0, minute=0, second=0, microsecond=0)
        case Bucket.WEEK:
            local = local.replace(hour=0, minute=0, second=0, microsecond=0)
            local -= timedelta(days=local.weekday())
    return local.replace(tzinfo=zone).astimezone(ZoneInfo("UTC"))
