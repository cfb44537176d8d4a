"""Declarative metrics: typed definitions compiled to each engine's SQL, cached per data version.

A :class:`Metric` is a measure over a :class:`Source` (an event table or a
relation derived from others), built from typed expressions; rolling metrics
count over trailing windows and derived ones combine other metrics. A
:class:`MetricQuery` asks for metrics x dimensions x time window x bucket x
filters; :class:`MetricService` compiles it with sqlglot for the engine's
dialect, runs it, and returns a :class:`QueryResult`. An analysis that needs a
query of its own builds a :class:`Statement`, which the service renders, runs
and caches the same way (:meth:`MetricService.run_statement`).
"""

from banking_analytics.metrics._budget import DEFAULT_MAX_CELLS, QueryBudget, QueryTooLargeError
from banking_analytics.metrics._calendar import bucket_starts
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
from banking_analytics.metrics._executor import DEFAULT_QUERY_WORKERS, QueryExecutor
from banking_analytics.metrics._expr import (
    All,
    AnyOf,
    Arith,
    Case,
    Coalesce,
    Col,
    Compare,
    Greatest,
    Is,
    IsNull,
    Least,
    Lit,
    Not,
    NotNull,
)
from banking_analytics.metrics._model import (
    DIMENSIONS,
    PERIOD_DAYS,
    Count,
    CountDistinct,
    Derived,
    Dimension,
    Max,
    Mean,
    Metric,
    Min,
    Percentile,
    Provided,
    Ratio,
    Rolling,
    Sum,
    Unit,
)
from banking_analytics.metrics._query import MetricQuery
from banking_analytics.metrics._render import Renderer, renderer_for
from banking_analytics.metrics._results import MetricValue, QueryResult, ResultRow, Status
from banking_analytics.metrics._revenue_catalog import (
    LEDGER,
    REVENUE_METRICS,
    SPEC_REVENUE_METRICS,
    RevenueMetricDefinition,
)
from banking_analytics.metrics._service import (
    DataVersions,
    MetricService,
    to_records,
)
from banking_analytics.metrics._source import SOURCES, Source
from banking_analytics.metrics._statement import Statement, window_condition
from banking_analytics.metrics._top import MAX_LIMIT, OTHER, TopN
from banking_analytics.metrics._window import (
    TIME_PERIODS,
    Bucket,
    QueryError,
    TimeWindow,
    check_timezone,
    parse_time_period,
    restrict_timezones,
)

__all__ = [
    "BUCKET_KEY",
    "CATALOG",
    "DEFAULT_MAX_CELLS",
    "DEFAULT_QUERY_WORKERS",
    "DIMENSIONS",
    "LATENCY_PERCENTILES",
    "LEDGER",
    "MAX_LIMIT",
    "MIN_SAMPLE",
    "OTHER",
    "PERIOD_DAYS",
    "REVENUE_METRICS",
    "SOURCES",
    "SPEC_REVENUE_METRICS",
    "SUCCESS_BREAKDOWN",
    "TIME_PERIODS",
    "All",
    "AnyOf",
    "Arith",
    "Bucket",
    "Case",
    "Coalesce",
    "Col",
    "Compare",
    "CompiledQuery",
    "Count",
    "CountDistinct",
    "DataVersions",
    "Derived",
    "Dimension",
    "Greatest",
    "Is",
    "IsNull",
    "Least",
    "Lit",
    "Max",
    "Mean",
    "Metric",
    "MetricQuery",
    "MetricService",
    "MetricValue",
    "Min",
    "Not",
    "NotNull",
    "Percentile",
    "Provided",
    "QueryBudget",
    "QueryError",
    "QueryExecutor",
    "QueryResult",
    "QueryTooLargeError",
    "Ratio",
    "Renderer",
    "ResultRow",
    "RevenueMetricDefinition",
    "Rolling",
    "Source",
    "Statement",
    "Status",
    "Sum",
    "TimeWindow",
    "TopN",
    "Unit",
    "aggregate",
    "bucket_starts",
    "check_timezone",
    "compile_query",
    "count_condition",
    "error_rate_metric",
    "parse_time_period",
    "renderer_for",
    "restrict_timezones",
    "to_records",
    "window_condition",
]
