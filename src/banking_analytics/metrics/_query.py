"""A metric query: metrics x dimensions x time window x bucket x filters, checked."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from banking_analytics.events import Field, Kind
from banking_analytics.metrics._calendar import bucket_count
from banking_analytics.metrics._catalog import CATALOG
from banking_analytics.metrics._model import DIMENSIONS, Metric
from banking_analytics.metrics._revenue_catalog import SPEC_REVENUE_METRICS
from banking_analytics.metrics._source import SOURCES
from banking_analytics.metrics._window import Bucket, QueryError, TimeWindow, check_timezone

__all__ = ["MAX_BUCKETS", "MAX_FILTER_VALUES", "MetricQuery"]

#: A time series longer than this is refused: ask for a wider bucket.
MAX_BUCKETS = 10_000
MAX_FILTER_VALUES = 100


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """What to compute. Build it with :meth:`build`, which checks every part."""

    metrics: tuple[Metric, ...]
    window: TimeWindow
    dimensions: tuple[str, ...] = ()
    bucket: Bucket | None = None
    #: (dimension, allowed values) pairs, sorted by dimension.
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()
    timezone: str = "UTC"

    @classmethod
    def build(
        cls,
        metrics: Iterable[str],
        window: TimeWindow,
        *,
        dimensions: Sequence[str] = (),
        bucket: Bucket | str | None = None,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        timezone: str = "UTC",
    ) -> MetricQuery:
        chosen = tuple(_metric(name) for name in dict.fromkeys(metrics))
        if not chosen:
            raise QueryError("metrics: name at least one metric")
        dims = tuple(dict.fromkeys(dimensions))
        for dim in dims:
            _check_dimension(dim, chosen, "dimensions")
        checked_filters = tuple(
            sorted(
                (dim, _check_filter(dim, values, chosen)) for dim, values in (filters or {}).items()
            )
        )
        money = [m.name for m in chosen if m.is_money]
        single_currency = any(
            dim == "currency" and len(values) == 1 for dim, values in checked_filters
        )
        if money and "currency" not in dims and not single_currency:
            raise QueryError(
                f"{', '.join(money)} is money: add the dimension 'currency' "
                "or filter on one currency"
            )
        chosen_bucket = _bucket(bucket)
        zone = check_timezone(timezone)
        if chosen_bucket is not None and bucket_count(window, chosen_bucket, zone) > MAX_BUCKETS:
            raise QueryError(
                f"bucket {chosen_bucket.value} over {window.label} makes more than "
                f"{MAX_BUCKETS} buckets; use a wider bucket or a shorter window"
            )
        return cls(chosen, window, dims, chosen_bucket, checked_filters, zone)

    def with_window(self, window: TimeWindow) -> MetricQuery:
        return MetricQuery(
            self.metrics, window, self.dimensions, self.bucket, self.filters, self.timezone
        )


#: The spec's ``RevenueMetric`` values, each naming one of the catalogue's metrics.
SPEC_NAMES = {spec.value: name for spec, name in SPEC_REVENUE_METRICS.items()}


def _metric(name: str) -> Metric:
    """A metric by its name, or by the spec's ``RevenueMetric`` value that names it."""
    try:
        return CATALOG[SPEC_NAMES.get(name, name)]
    except KeyError:
        raise QueryError(
            f"metrics: unknown metric {name!r}; see GET .../metrics for the catalogue"
        ) from None


def _bucket(bucket: Bucket | str | None) -> Bucket | None:
    if bucket is None or isinstance(bucket, Bucket):
        return bucket
    try:
        return Bucket(bucket)
    except ValueError:
        raise QueryError(
            f"bucket {bucket!r} is not one of {', '.join(b.value for b in Bucket)}"
        ) from None


def _check_dimension(dim: str, metrics: Sequence[Metric], where: str) -> None:
    if dim not in DIMENSIONS:
        raise QueryError(f"{where}: unknown dimension {dim!r}; one of {', '.join(DIMENSIONS)}")
    for metric in metrics:
        if dim not in metric.dimensions:
            raise QueryError(
                f"{where}: metric {metric.name!r} cannot be cut by {dim!r}; "
                f"it allows {', '.join(metric.dimensions)}"
            )


def _field(metrics: Sequence[Metric], column: str) -> Field:
    """The typed field behind a dimension's column, from the first source that has it (a
    provided metric has none: then from any source, the column means the same in all)."""
    for metric in metrics:
        for source in (m.source for m in metric.inputs):
            if source is not None and column in source.columns:
                return source.field(column)
    for source in SOURCES.values():
        if column in source.columns:
            return source.field(column)
    raise AssertionError(f"no source of {[m.name for m in metrics]} has {column!r}")


def _check_filter(
    dim: str, values: str | Sequence[str], metrics: Sequence[Metric]
) -> tuple[str, ...]:
    _check_dimension(dim, metrics, "filters")
    listed = (values,) if isinstance(values, str) else tuple(dict.fromkeys(values))
    if not 1 <= len(listed) <= MAX_FILTER_VALUES:
        raise QueryError(f"filters.{dim}: give 1 to {MAX_FILTER_VALUES} values")
    field = _field(metrics, DIMENSIONS[dim].column)
    for value in listed:
        if not isinstance(value, str):
            raise QueryError(f"filters.{dim}: values must be strings, got {value!r}")
        if field.kind is Kind.ENUM and value not in field.choices:
            raise QueryError(f"filters.{dim}: {value!r} is not one of {', '.join(field.choices)}")
        if field.max_length is not None and len(value) > field.max_length:
            raise QueryError(f"filters.{dim}: {value[:20]!r}… is longer than {field.max_length}")
        if field.pattern is not None and not re.match(field.pattern, value):
            raise QueryError(f"filters.{dim}: {value!r} is not a valid {field.name}")
    return listed
