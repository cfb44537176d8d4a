"""The analyses' typed result shapes, on every engine: fields and items are the same
figures (the spec's ``perf["success_rate"]["average"]``), and the facade's namespace is
built once and answers what the flat methods answer."""

from __future__ import annotations

import threading

import pytest

from banking_analytics import BankingPerformanceAnalytics, EventStatus
from banking_analytics.analytics import (
    ConnectionPerformance,
    InstitutionCut,
    PerformanceNamespace,
    Shape,
)
from banking_analytics.analytics._shape import _attribute_docstrings
from banking_analytics.metrics import TimeWindow
from test_metrics_handworked import NOW, T0, behaviour, connection_attempts, syncs

WINDOW = TimeWindow(T0, NOW)


@pytest.fixture
def hand(analytics: BankingPerformanceAnalytics) -> BankingPerformanceAnalytics:
    results = analytics.ingest(connection_attempts() + behaviour() + syncs())
    assert {r.status for r in results} == {EventStatus.ACCEPTED}
    return analytics


def test_items_read_the_fields(hand: BankingPerformanceAnalytics) -> None:
    perf = hand.analyze_connection_performance(WINDOW)
    assert isinstance(perf, ConnectionPerformance)
    # The hand-worked figures of test_metrics_handworked, read both ways.
    assert perf["success_rate"]["average"] == pytest.approx(20 / 26)
    assert perf.success_rate.average == perf["success_rate"]["average"]
    assert perf["latency"]["average_ms"] == pytest.approx((6600 + 210_000) / 31)
    assert perf.latency.p95_ms == perf["latency"]["p95_ms"] == 19000
    assert perf["success_rate"]["excluded"]["user_errors"] == 3
    assert perf["time_period"]["start"] == T0
    with pytest.raises(KeyError, match="average"):
        perf["average"]
    # Only fields are items, not methods.
    assert "keys" not in perf
    with pytest.raises(KeyError):
        perf["keys"]


def test_a_shape_is_a_mapping_of_its_fields_in_order(hand: BankingPerformanceAnalytics) -> None:
    perf = hand.analyze_connection_performance(WINDOW)
    assert list(perf) == [
        "time_period", "attempts", "success_rate", "latency", "link_conversion",
        "by_aggregator", "by_institution", "by_feature", "time_series",
    ]  # fmt: skip
    assert len(perf) == 9
    assert "by_feature" in perf
    assert "nonsense" not in perf
    cut = perf["by_institution"][0]
    assert isinstance(cut, InstitutionCut)
    assert isinstance(cut, Shape)
    # Each cut names its own dimension, after the figures (as the API has always written it);
    # an institution's, then its catalogue name.
    assert list(cut)[-2:] == ["institution", "institution_name"]
    assert cut["institution"] == cut.institution
    assert dict(cut)["attempts"] == cut.attempts
    usage = hand.analyze_feature_usage(WINDOW, "spending_analysis")
    assert list(usage["feature_usage"]) == ["spending_analysis"]
    assert usage["feature_usage"]["spending_analysis"]["usage_count"] == 24


def test_the_namespace_is_built_once_and_answers_like_the_flat_methods(
    hand: BankingPerformanceAnalytics,
) -> None:
    seen: list[PerformanceNamespace] = []
    start = threading.Barrier(8)

    def look() -> None:
        start.wait()
        seen.append(hand.performance)

    threads = [threading.Thread(target=look) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(namespace) for namespace in seen}) == 1
    assert seen[0] is hand.performance
    assert hand.performance.analyze_error_rates(WINDOW) == hand.analyze_error_rates(WINDOW)
    assert hand.performance.dashboard(WINDOW, parts=["errors"]) == {
        "errors": hand.analyze_error_rates(WINDOW)
    }


def _shapes(base: type[Shape]) -> list[type[Shape]]:
    return [s for sub in base.__subclasses__() for s in (sub, *_shapes(sub))]


def test_the_openapi_document_describes_each_field_by_the_docstring_under_it() -> None:
    """The API documents a shape's fields with their attribute docstrings, read from the
    source (and only when the document is asked for: building an app reads no source)."""
    from banking_analytics.api import create_app

    schemas = create_app().openapi()["components"]["schemas"]
    described = 0
    for shape in _shapes(Shape):
        if shape.__name__ not in schemas:
            continue
        properties = schemas[shape.__name__]["properties"]
        for name, doc in _attribute_docstrings(shape).items():
            assert properties[name]["description"] == doc, (shape.__name__, name)
            described += 1
    assert described > 50
    gap = schemas["Sessions"]["properties"]["gap_s"]
    assert "description" not in gap  # no docstring under it: none made up
    length = schemas["SessionFigures"]["properties"]["mean_length_s"]["description"]
    assert length == "Mean session length: last event - first event + the last event's duration."
