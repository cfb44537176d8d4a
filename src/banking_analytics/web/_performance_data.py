"""What the performance dashboard and an institution's drill-down show, as JSON-ready data.

Every figure is a catalogue metric answered by the metric layer (cached per data
version, so a page polling for news costs a look-up until an event arrives), cut
by the filter bar's feature, institution and aggregator; institution health and
sync freshness come from their analyses. A figure resting on fewer events than
its metric's minimum sample is ``None`` with status ``insufficient_data``: the
page says so, never 0 %.

Charts share one shape, which the page draws and offers as CSV as it is:
``{"id", "title", "unit", "kind", "x": [...], "series": [{"name", "values": [...]}]}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlglot
from sqlglot import exp

from banking_analytics._facade import BankingPerformanceAnalytics
from banking_analytics.analytics import display_name
from banking_analytics.events import SCHEMAS
from banking_analytics.metrics import (
    MIN_SAMPLE,
    Bucket,
    DataVersions,
    MetricQuery,
    QueryResult,
    Renderer,
    ResultRow,
    Statement,
    TimeWindow,
    window_condition,
)
from banking_analytics.store.statements import column
from banking_analytics.vocabulary import BankingFeature, ErrorCategory, EventType, Outcome
from banking_analytics.web._filters import Filters

__all__ = [
    "HEALTH_LOOKBACK",
    "choose_bucket",
    "holds_sample",
    "institution_data",
    "main_sample",
    "performance_data",
]

#: Institution health and sync freshness are judged over this span to the window's end
#: (states need history: a change of state takes consecutive windows).
HEALTH_LOOKBACK = timedelta(days=7)
_SUCCESS = "connection_success_rate"
_P95 = "connection_latency_p95_ms"
_HEADLINE = (
    _SUCCESS,
    "connection_institution_error_share",
    "connection_aggregator_error_share",
    "connection_health_attempts",
    "connection_attempts",
    "connection_latency_p50_ms",
    _P95,
    "connection_latency_p99_ms",
    "connection_error_rate",
    "connection_failures",
)
_SPARK = (_SUCCESS, _P95, "connection_error_rate")
#: Fixed-width buckets a series may be cut by, finest first, and how many a chart may hold.
_BUCKETS = (Bucket.QUARTER_HOUR, Bucket.HOUR, Bucket.DAY, Bucket.WEEK)
_MIN_POINTS, _MAX_POINTS = 4, 200
_HEADROOM = 3
_FRESHNESS_STATES = ("NORMAL", "DELAYED", "STOPPED")
_RECENT_FAILURES = 20
_LOWEST_SHOWN = 10
_MAIN_SHARE = 0.9
_METRIC_LABEL = {_SUCCESS: "success rate", _P95: "latency p95"}
_ATTEMPTS = SCHEMAS[EventType.CONNECTION_ATTEMPT].table

Panel = Callable[[], Any]


def choose_bucket(window: TimeWindow, sample: int | None) -> Bucket:
    """The finest bucket whose buckets hold on average at least three times the minimum
    sample (``sample`` ÷ number of buckets ≥ 3 · ``MIN_SAMPLE``: traffic is diurnal, and
    quiet hours carry a third of the average or less), among those cutting the window into
    4 to 200 points; without such a bucket, the coarsest of those (its sparse points then
    show as insufficient data). Grafana's auto interval works the same way."""
    fitting = [b for b in _BUCKETS if _MIN_POINTS <= window.length / b.width <= _MAX_POINTS]
    if not fitting:  # windows of years: weeks (the shortest periods always fit quarter-hours)
        fitting = [_BUCKETS[-1]]
    for bucket in fitting:
        if holds_sample(window, bucket, sample, _HEADROOM):
            return bucket
    return fitting[-1]


def holds_sample(
    window: TimeWindow, bucket: Bucket, sample: int | None, headroom: float = 1.0
) -> bool:
    """Whether ``bucket``'s points hold on average ``headroom`` times the minimum sample,
    of ``sample`` events in the window."""
    return (sample or 0) / (window.length / bucket.width) >= headroom * MIN_SAMPLE


def performance_data(
    analytics: BankingPerformanceAnalytics, filters: Filters, now: datetime | None = None
) -> dict[str, Any]:
    """The performance dashboard: headline tiles (each with the previous period and a
    sparkline), success rate and p95 latency over time by aggregator, error categories
    over time, feature usage and success, sync freshness by state, and the institution
    health table."""
    window = filters.window(now)
    versions = analytics.metrics.versions()
    cuts = filters.metric_filters()
    headline, bucket = _headline(analytics, window, filters, versions)
    # The aggregators' lines are cut as finely as the main aggregators' samples allow (a
    # small one's points may be gaps); if no bucket gives them the minimum sample per
    # point, each aggregator is one bar for the whole window.
    least = _main_aggregators_sample(analytics, window, filters, versions)
    chosen = choose_bucket(window, least)
    by_aggregator_bucket = chosen if holds_sample(window, chosen, least) else None
    panels: dict[str, Panel] = {
        "spark": lambda: _bucketed(analytics, _SPARK, window, bucket, filters, versions),
        "by_aggregator": lambda: _bucketed(
            analytics,
            (_SUCCESS, _P95),
            window,
            by_aggregator_bucket,
            filters,
            versions,
            ["aggregator"],
        ),
        "errors": lambda: _error_series(analytics, window, bucket, filters, versions),
        "features": lambda: _feature_usage(analytics, window, filters, versions),
        "freshness": lambda: _freshness(analytics, window.end, filters, versions),
        "freshness_before": lambda: _freshness(analytics, window.start, filters, versions),
        "health": lambda: analytics.performance.health.institution_health(
            TimeWindow(window.end - HEALTH_LOOKBACK, window.end), versions=versions
        ),
        "institutions": lambda: _run(
            analytics,
            MetricQuery.build(
                (_SUCCESS, _P95, "connection_health_attempts", "connection_attempts"),
                window,
                dimensions=["institution"],
                filters=cuts,
                timezone=filters.timezone,
            ),
            versions,
        ),
        "names": lambda: analytics.performance.institutions.names(versions),
    }
    answers = dict(zip(panels, analytics.queries.gather(list(panels.values())), strict=True))
    spark: QueryResult = answers["spark"]
    by_aggregator: QueryResult = answers["by_aggregator"]
    freshness, before = answers["freshness"], answers["freshness_before"]
    return {
        **_frame(window, bucket, filters),
        "tiles": [
            *_connection_tiles(headline, spark),
            _freshness_tile(freshness, before),
        ],
        "charts": [
            _by_dimension(
                by_aggregator,
                _SUCCESS,
                "aggregator",
                "success_by_aggregator",
                "Success rate by aggregator",
                filters,
            ),
            _by_dimension(
                by_aggregator,
                _P95,
                "aggregator",
                "latency_by_aggregator",
                "Latency p95 by aggregator",
                filters,
            ),
            _lowest_success(answers["institutions"], answers["names"]),
            answers["errors"],
            *answers["features"],
            _chart(
                "freshness_by_state",
                "Connections by sync freshness",
                "count",
                "bar",
                list(_FRESHNESS_STATES),
                {"connections": [freshness[s] for s in _FRESHNESS_STATES]},
            ),
        ],
        "institutions": _institution_rows(answers["health"], answers["institutions"], filters),
        "institution_names": answers["names"],
    }


def institution_data(
    analytics: BankingPerformanceAnalytics,
    institution: str,
    filters: Filters,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One institution: its headline tiles and series, error categories over time,
    figures per feature, the health of each of its aggregator products, and its most
    recent failed attempts with the aggregator's raw error codes."""
    scoped = replace(filters, institution=institution)
    window = scoped.window(now)
    versions = analytics.metrics.versions()
    cuts = scoped.metric_filters()
    headline, bucket = _headline(analytics, window, scoped, versions)
    panels: dict[str, Panel] = {
        "spark": lambda: _bucketed(analytics, _SPARK, window, bucket, scoped, versions),
        "errors": lambda: _error_series(analytics, window, bucket, scoped, versions),
        "features": lambda: _run(
            analytics,
            MetricQuery.build(
                (_SUCCESS, "connection_attempts", _P95),
                window,
                dimensions=["feature"],
                filters=cuts,
                timezone=filters.timezone,
            ),
            versions,
        ),
        "health": lambda: analytics.performance.health.institution_health(
            TimeWindow(window.end - HEALTH_LOOKBACK, window.end), versions=versions
        ),
        "failures": lambda: analytics.metrics.run_statement(
            Statement(
                _recent_failures,
                (window.start, window.end, institution, Outcome.FAILURE.value),
                (_ATTEMPTS,),
            ),
            versions,
        ),
        "names": lambda: analytics.performance.institutions.names(versions),
    }
    answers = dict(zip(panels, analytics.queries.gather(list(panels.values())), strict=True))
    spark: QueryResult = answers["spark"]
    features: QueryResult = answers["features"]
    name = display_name(institution, answers["names"])
    feature_rows = sorted(features.rows, key=lambda r: -r.count("connection_attempts"))
    zone = ZoneInfo(filters.timezone)
    return {
        **_frame(window, bucket, filters),
        "institution": institution,
        "institution_name": answers["names"].get(institution),
        "tiles": _connection_tiles(headline, spark),
        "charts": [
            _series_chart(spark, _SUCCESS, "success_over_time", "Success rate", filters, name),
            _series_chart(spark, _P95, "latency_over_time", "Latency p95", filters, name),
            answers["errors"],
            _chart(
                "features",
                "Attempts by feature",
                "count",
                "bar",
                [r.dimensions["feature"] for r in feature_rows],
                {"attempts": [r.count("connection_attempts") for r in feature_rows]},
            ),
            _chart(
                "feature_success",
                "Success rate by feature",
                "ratio",
                "bar",
                [r.dimensions["feature"] for r in feature_rows],
                {"success rate": [r.number(_SUCCESS) for r in feature_rows]},
            ),
        ],
        "products": [
            p for p in answers["health"]["products"] if p["institution_id"] == institution
        ],
        "failures": [
            {
                **row,
                "occurred_at": row["occurred_at"].astimezone(zone).isoformat(),
            }
            for row in answers["failures"].to_pylist()
        ],
    }


# -- the parts --------------------------------------------------------------------------


def _headline(
    analytics: BankingPerformanceAnalytics,
    window: TimeWindow,
    filters: Filters,
    versions: DataVersions,
) -> tuple[ResultRow, Bucket]:
    """The headline figures with the previous period's, and the bucket their sample allows."""
    query = MetricQuery.build(
        _HEADLINE, window, filters=filters.metric_filters(), timezone=filters.timezone
    )
    headline = _run(analytics, query, versions, compare=True).single()
    return headline, choose_bucket(window, headline.count("connection_health_attempts"))


def _run(
    analytics: BankingPerformanceAnalytics,
    query: MetricQuery,
    versions: DataVersions,
    *,
    compare: bool = False,
) -> QueryResult:
    return analytics.metrics.run(query, compare=compare, versions=versions)


def _frame(window: TimeWindow, bucket: Bucket, filters: Filters) -> dict[str, Any]:
    return {
        "window": {
            "label": window.label,
            "start": window.start.isoformat(),
            "end": window.end.isoformat(),
        },
        "bucket": bucket.value,
        "timezone": filters.timezone,
        "min_sample": MIN_SAMPLE,
        "generated_at": datetime.now(UTC).isoformat(),
    }


def _main_aggregators_sample(
    analytics: BankingPerformanceAnalytics,
    window: TimeWindow,
    filters: Filters,
    versions: DataVersions,
) -> int:
    """The bank-health sample of the main aggregators in the window (see :func:`main_sample`)."""
    result = _run(
        analytics,
        MetricQuery.build(
            ["connection_health_attempts"],
            window,
            dimensions=["aggregator"],
            filters=filters.metric_filters(),
            timezone=filters.timezone,
        ),
        versions,
    )
    return main_sample([row.count("connection_health_attempts") or 0 for row in result.rows])


def main_sample(samples: Sequence[int]) -> int:
    """The smallest sample among the main series: the busiest that together hold at least
    90 % of all (0 without any). A chart cut for it gives them their minimum sample; the
    small rest may show gaps."""
    total, held = sum(samples), 0
    for sample in sorted(samples, reverse=True):
        held += sample
        if held and held >= _MAIN_SHARE * total:
            return sample
    return 0


def _bucketed(
    analytics: BankingPerformanceAnalytics,
    metrics: Sequence[str],
    window: TimeWindow,
    bucket: Bucket | None,
    filters: Filters,
    versions: DataVersions,
    dimensions: Sequence[str] = (),
) -> QueryResult:
    query = MetricQuery.build(
        metrics,
        window,
        dimensions=dimensions,
        bucket=bucket,
        filters=filters.metric_filters(),
        timezone=filters.timezone,
    )
    return _run(analytics, query, versions)


def _bucket_label(row: ResultRow, zone: ZoneInfo) -> str:
    """A bucket's start in the timezone; a row of a whole window (no bucket), its label."""
    return row.bucket.astimezone(zone).isoformat() if row.bucket is not None else "window"


def _chart(
    chart_id: str,
    title: str,
    unit: str,
    kind: str,
    x: list[Any],
    series: dict[str, list[Any]],
) -> dict[str, Any]:
    return {
        "id": chart_id,
        "title": title,
        "unit": unit,
        "kind": kind,
        "x": x,
        "series": [{"name": name, "values": values} for name, values in series.items()],
    }


def _series_chart(
    result: QueryResult, metric: str, chart_id: str, title: str, filters: Filters, name: str
) -> dict[str, Any]:
    """One series, named ``name`` (the institution's)."""
    zone = ZoneInfo(filters.timezone)
    return _chart(
        chart_id,
        title,
        _unit(metric),
        "line",
        [_bucket_label(row, zone) for row in result.rows],
        {name: [row.number(metric) for row in result.rows]},
    )


def _unit(metric: str) -> str:
    return "ms" if metric.endswith("_ms") else "ratio"


def _by_dimension(
    result: QueryResult,
    metric: str,
    dimension: str,
    chart_id: str,
    title: str,
    filters: Filters,
) -> dict[str, Any]:
    """One line per value of ``dimension``, over the buckets (a bucket a value has no
    events in is a gap); from a query of the whole window (no buckets), one bar per value."""
    zone = ZoneInfo(filters.timezone)
    if all(row.bucket is None for row in result.rows) and result.rows:
        rows = sorted(result.rows, key=lambda r: str(r.dimensions[dimension]))
        return _chart(
            chart_id,
            f"{title} (whole window: too few attempts for a series)",
            _unit(metric),
            "bar",
            [str(row.dimensions[dimension]) for row in rows],
            {_METRIC_LABEL[metric]: [row.number(metric) for row in rows]},
        )
    x = sorted({_bucket_label(row, zone) for row in result.rows})
    position = {label: i for i, label in enumerate(x)}
    series: dict[str, list[Any]] = {}
    for row in result.rows:
        values = series.setdefault(str(row.dimensions[dimension]), [None] * len(x))
        values[position[_bucket_label(row, zone)]] = row.number(metric)
    return _chart(chart_id, title, _unit(metric), "line", x, dict(sorted(series.items())))


def _error_series(
    analytics: BankingPerformanceAnalytics,
    window: TimeWindow,
    bucket: Bucket,
    filters: Filters,
    versions: DataVersions,
) -> dict[str, Any]:
    """Failed attempts per error category and bucket (categories with failures)."""
    result = _run(
        analytics,
        MetricQuery.build(
            ["connection_failures"],
            window,
            dimensions=["error_category"],
            bucket=bucket,
            filters={**filters.metric_filters(), "outcome": Outcome.FAILURE.value},
            timezone=filters.timezone,
        ),
        versions,
    )
    zone = ZoneInfo(filters.timezone)
    x = sorted({_bucket_label(row, zone) for row in result.rows})
    position = {label: i for i, label in enumerate(x)}
    names = [c.value for c in ErrorCategory]
    series = {name: [0] * len(x) for name in [*names, "uncategorised"]}
    for row in result.rows:
        name = row.dimensions["error_category"] or "uncategorised"
        series[str(name)][position[_bucket_label(row, zone)]] += row.count("connection_failures")
    kept = {name: values for name, values in series.items() if any(values)}
    return _chart(
        "errors_by_category", "Failed attempts by error category", "count", "bar", x, kept
    )


def _feature_usage(
    analytics: BankingPerformanceAnalytics,
    window: TimeWindow,
    filters: Filters,
    versions: DataVersions,
) -> list[dict[str, Any]]:
    """Interactions and success rate per banking feature (behaviour events: cut by the
    feature filter alone, as they name no institution or aggregator)."""
    chosen = [filters.feature] if filters.feature else [f.value for f in BankingFeature]
    result = _run(
        analytics,
        MetricQuery.build(
            ["feature_interactions", "feature_success_rate"],
            window,
            dimensions=["feature"],
            filters={"feature": chosen},
            timezone=filters.timezone,
        ),
        versions,
    )
    rows = {row.dimensions["feature"]: row for row in result.rows}
    return [
        _chart(
            "feature_usage",
            "Feature usage (interactions)",
            "count",
            "bar",
            chosen,
            {
                "interactions": [
                    rows[f].count("feature_interactions") if f in rows else 0 for f in chosen
                ]
            },
        ),
        _chart(
            "feature_success",
            "Feature success rate",
            "ratio",
            "bar",
            chosen,
            {
                "success rate": [
                    rows[f].number("feature_success_rate") if f in rows else None for f in chosen
                ]
            },
        ),
    ]


def _freshness(
    analytics: BankingPerformanceAnalytics,
    at: datetime,
    filters: Filters,
    versions: DataVersions,
) -> dict[str, int]:
    """Connections per refresh state at ``at``, among those matching the filters."""
    answer = analytics.performance.freshness.sync_freshness(
        TimeWindow(at - HEALTH_LOOKBACK, at), versions=versions
    )
    counts = dict.fromkeys(_FRESHNESS_STATES, 0)
    for row in answer["by_institution"]:
        if all(row[key] == value for key, value in _row_cuts(filters).items()):
            for state in _FRESHNESS_STATES:
                counts[state] += row[state]
    return counts


def _row_cuts(filters: Filters) -> dict[str, str]:
    cuts = {
        "institution_id": filters.institution,
        "aggregator": filters.aggregator,
        "feature": filters.feature,
    }
    return {key: value for key, value in cuts.items() if value is not None}


# -- tiles ------------------------------------------------------------------------------


def _tile(
    tile_id: str,
    label: str,
    row: ResultRow,
    metric: str,
    spark: QueryResult | None,
    *,
    higher_is_better: bool,
    detail: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    value = row.values[metric]
    now_number = row.number(metric)
    # The previous period's figures, read as the current ones are.
    before = ResultRow(row.bucket, row.dimensions, row.previous) if row.previous else None
    before_number = before.number(metric) if before is not None else None
    return {
        "id": tile_id,
        "label": label,
        "unit": _unit(metric),
        "value": now_number,
        "status": value.status.value,
        "sample_size": value.sample_size,
        "previous": before_number,
        "change": (
            None if now_number is None or before_number is None else now_number - before_number
        ),
        "higher_is_better": higher_is_better,
        "spark": [r.number(metric) for r in spark.rows] if spark is not None else [],
        "detail": detail or [],
    }


def _connection_tiles(headline: ResultRow, spark: QueryResult) -> list[dict[str, Any]]:
    def figure(label: str, metric: str) -> dict[str, Any]:
        return {"label": label, "value": headline.number(metric), "unit": _unit(metric)}

    return [
        _tile(
            "success_rate",
            "Connection success rate",
            headline,
            _SUCCESS,
            spark,
            higher_is_better=True,
            detail=[
                figure("success", _SUCCESS),
                figure("institution errors", "connection_institution_error_share"),
                figure("aggregator errors", "connection_aggregator_error_share"),
            ],
        ),
        _tile(
            "latency",
            "Latency p95",
            headline,
            _P95,
            spark,
            higher_is_better=False,
            detail=[
                figure("p50", "connection_latency_p50_ms"),
                figure("p95", _P95),
                figure("p99", "connection_latency_p99_ms"),
            ],
        ),
        _tile(
            "error_rate",
            "Error rate",
            headline,
            "connection_error_rate",
            spark,
            higher_is_better=False,
            detail=[
                {
                    "label": "failures",
                    "value": headline.count("connection_failures"),
                    "unit": "count",
                },
                {
                    "label": "attempts",
                    "value": headline.count("connection_attempts"),
                    "unit": "count",
                },
            ],
        ),
    ]


def _fresh_share(counts: dict[str, int]) -> float | None:
    total = sum(counts.values())
    return counts["NORMAL"] / total if total else None


def _freshness_tile(now: dict[str, int], before: dict[str, int]) -> dict[str, Any]:
    """Share of connections whose last successful sync is within 1.5x their expected
    interval (NORMAL), at the window's end and at its start."""
    share, previous = _fresh_share(now), _fresh_share(before)
    total = sum(now.values())
    return {
        "id": "freshness",
        "label": "Sync freshness (NORMAL)",
        "unit": "ratio",
        "value": share,
        "status": "ok" if total else "insufficient_data",
        "sample_size": total,
        "previous": previous,
        "change": None if share is None or previous is None else share - previous,
        "higher_is_better": True,
        "spark": [],
        "detail": [
            {"label": state.lower(), "value": now[state], "unit": "count"}
            for state in _FRESHNESS_STATES
        ],
    }


# -- the institution table and failures --------------------------------------------------


def _lowest_success(figures: QueryResult, names: dict[str, str]) -> dict[str, Any]:
    """The institutions with the lowest success rates in the window, among those whose
    rate rests on the minimum sample (the others have no rate to rank), by name."""
    rated = [row for row in figures.rows if row.number(_SUCCESS) is not None]
    lowest = sorted(rated, key=lambda r: (r.number(_SUCCESS), str(r.dimensions["institution"])))
    shown = lowest[:_LOWEST_SHOWN]
    labels = [display_name(str(r.dimensions["institution"]), names) for r in shown]
    # Two institutions of one name would share a bar: those are told apart by id.
    repeated = {label for label in labels if labels.count(label) > 1}
    return _chart(
        "lowest_success_by_institution",
        f"Lowest success rates by institution (of {len(rated):,} with enough attempts)",
        "ratio",
        "bar",
        [
            f"{label} ({r.dimensions['institution']})" if label in repeated else label
            for label, r in zip(labels, shown, strict=True)
        ],
        {"success rate": [r.number(_SUCCESS) for r in shown]},
    )


def _institution_rows(
    health: dict[str, Any], figures: QueryResult, filters: Filters
) -> list[dict[str, Any]]:
    """One row per institution x aggregator the health analysis judged (matching the
    filters), with its last state change and the window's figures of the institution."""
    changes: dict[tuple[str, str], str | None] = {}
    for product in health["products"]:
        key = (product["institution_id"], product["aggregator"])
        changed = product["last_state_change"]
        text = changed.isoformat() if isinstance(changed, datetime) else changed
        if text is not None and (changes.get(key) is None or text > str(changes[key])):
            changes[key] = text
        changes.setdefault(key, None)
    by_institution = {row.dimensions["institution"]: row for row in figures.rows}
    cuts = {k: v for k, v in _row_cuts(filters).items() if k != "feature"}
    rows = []
    for item in health["institutions"]:
        if not all(item[key] == value for key, value in cuts.items()):
            continue
        row = by_institution.get(item["institution_id"])
        success = row.values[_SUCCESS] if row is not None else None
        rows.append(
            {
                "institution_id": item["institution_id"],
                "institution_name": item["institution_name"],
                "aggregator": item["aggregator"],
                "state": item["state"],
                "last_state_change": changes.get((item["institution_id"], item["aggregator"])),
                "success_rate": row.number(_SUCCESS) if row is not None else None,
                "status": success.status.value if success is not None else "insufficient_data",
                "latency_p95_ms": row.number(_P95) if row is not None else None,
                "sample_size": row.count("connection_health_attempts") if row is not None else 0,
            }
        )
    order = {"DOWN": 0, "DEGRADED": 1, "UNKNOWN": 2, "HEALTHY": 3}
    return sorted(rows, key=lambda r: (order.get(r["state"], 4), r["institution_id"]))


def _recent_failures(renderer: Renderer) -> exp.Select:
    """The latest failed attempts of one institution in a window ``[?, ?)`` (bound: start,
    end, institution id, the failure outcome), newest first, with the raw error codes."""
    del renderer  # plain columns: nothing dialect-specific to render
    return (
        sqlglot.select(
            *(
                column(name)
                for name in (
                    "occurred_at",
                    "aggregator",
                    "feature",
                    "error_category",
                    "error_type",
                    "error_code",
                    "latency_ms",
                )
            )
        )
        .from_(_ATTEMPTS)
        .where(window_condition())
        .where(column("institution_id").eq(exp.Placeholder()))
        .where(column("outcome").eq(exp.Placeholder()))
        .order_by(exp.Ordered(this=column("occurred_at"), desc=True))
        .limit(_RECENT_FAILURES)
    )
