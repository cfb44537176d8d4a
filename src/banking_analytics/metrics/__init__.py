"""Declarative metrics: typed definitions compiled to each engine's SQL, cached per data version.

A :class:`MetricQuery` asks for metrics x dimensions x time window x bucket x
filters; :class:`MetricService` compiles it with sqlglot for the engine's
dialect, runs it, and returns a :class:`QueryResult`. An analysis that needs a
query of its own builds a :class:`Statement`, which the service renders, runs
and caches the same way (:meth:`MetricService.run_statement`).
"""

from banking_analytics.metrics._catalog import (
    CATALOG,
    LATENCY_PERCENTILES,
    MIN_SAMPLE,
    SUCCESS_BREAKDOWN,
    error_rate_metric,
)
from banking_analytics.metrics._compile import (
    BUCKET_KEY,
    CompiledQuery,
    aggregate,
    compile_query,
    count_condition,
)
from banking_analytics.metrics._model import DIMENSIONS, Dimension, Metric, Unit
from banking_analytics.metrics._query import MetricQuery
from banking_analytics.metrics._render import Renderer, renderer_for
from banking_analytics.metrics._results import MetricValue, QueryResult, ResultRow, Status
from banking_analytics.metrics._service import (
    DataVersions,
    MetricService,
    bucket_starts,
    to_records,
)
from banking_analytics.metrics._statement import Statement, window_condition
from banking_analytics.metrics._window import (
    TIME_PERIODS,
    Bucket,
    QueryError,
    TimeWindow,
    parse_time_period,
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
    "Statement",
    "Status",
    "TimeWindow",
    "Unit",
    "aggregate",
    "bucket_starts",
    "compile_query",
    "count_condition",
    "error_rate_metric",
    "parse_time_period",
    "renderer_for",
    "to_records",
    "window_condition",
]
