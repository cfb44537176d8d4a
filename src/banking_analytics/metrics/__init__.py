"""Declarative metrics: typed definitions compiled to each engine's SQL, cached per data version.

A :class:`MetricQuery` asks for metrics x dimensions x time window x bucket x
filters; :class:`MetricService` compiles it with sqlglot for the engine's
dialect, runs it, and returns a :class:`QueryResult`.
"""

from banking_analytics.metrics._catalog import (
    CATALOG,
    LATENCY_PERCENTILES,
    MIN_SAMPLE,
    SUCCESS_BREAKDOWN,
    error_rate_metric,
)
from banking_analytics.metrics._compile import BUCKET_KEY, CompiledQuery, compile_query
from banking_analytics.metrics._model import DIMENSIONS, Dimension, Metric, Unit
from banking_analytics.metrics._query import MetricQuery
from banking_analytics.metrics._render import Renderer, renderer_for
from banking_analytics.metrics._results import MetricValue, QueryResult, ResultRow, Status
from banking_analytics.metrics._service import (
    DataVersions,
    MetricService,
    bucket_microseconds,
    bucket_starts,
    to_records,
)
from banking_analytics.metrics._window import (
    TIME_PERIODS,
    Bucket,
    QueryError,
    TimeWindow,
    parse_time_period,
    restrict_timezones,
)

__all__ = [
    "BUCKET_KEY",
    "CATALOG",
    "DIMENSIONS",
    "LATENCY_PERCENTILES",
    "MIN_SAMPLE",
    "SUCCESS_BREAKDOWN",
    "TIME_PERIODS",
    "Bucket",
    "CompiledQuery",
    "DataVersions",
    "Dimension",
    "Metric",
    "MetricQuery",
    "MetricService",
    "MetricValue",
    "QueryError",
    "QueryResult",
    "Renderer",
    "ResultRow",
    "Status",
    "TimeWindow",
    "Unit",
    "bucket_microseconds",
    "bucket_starts",
    "compile_query",
    "error_rate_metric",
    "parse_time_period",
    "renderer_for",
    "restrict_timezones",
    "to_records",
]
