"""Schemathesis against the app's own OpenAPI document, every operation, over real HTTP:
no input yields a 5xx, every response conforms to the document, and data the
document forbids is refused (positive and negative generation, admin credentials).
Then inputs the document accepts but engines may not: every timezone Python knows,
dates from year 1 to 9999, every bucket and dimension, on POST /metrics/query and
every GET route (bounded numbers of examples).

Hypothesis drives Schemathesis' strategies directly: its pytest plugin does not
run on pytest 9.2 (it reads a private attribute pytest removed).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import available_timezones

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from api_fixtures import LiveAPI
from banking_analytics.api import create_app
from banking_analytics.metrics import CATALOG, DIMENSIONS, Bucket
from test_metrics_handworked import NOW, T0, behaviour, connection_attempts, syncs

PREFIX = "/api/banking-analytics"

SCHEMA = schemathesis.openapi.from_dict(create_app().openapi())
# The credentials are ours; generated Authorization headers would only test the 401 path.
SCHEMA.config.generation.update(with_security_parameters=False, allow_x00=True)
#: Answers that never end (an event stream reads as one endless body here): left out of
#: the fuzzing; test_monitor_stream.py checks their refusals and their events.
ENDLESS = {f"{PREFIX}/stream"}
OPERATIONS = [
    op for op in (result.ok() for result in SCHEMA.get_all_operations()) if op.path not in ENDLESS
]


def _cases() -> list[object]:
    """Every operation with valid data; those that take any input, with invalid data too."""
    cases = []
    for operation in OPERATIONS:
        modes = [GenerationMode.POSITIVE]
        if operation.definition.raw.get("parameters") or operation.body:
            modes.append(GenerationMode.NEGATIVE)
        cases += [pytest.param(operation, mode, id=f"{operation.label}-{mode}") for mode in modes]
    return cases


# On every engine: each refuses different text (PostgreSQL has no NUL in strings).
@pytest.mark.parametrize(("operation", "mode"), _cases())
def test_no_input_breaks_the_api(
    operation: schemathesis.APIOperation, mode: GenerationMode, live_api: LiveAPI
) -> None:
    # Some data, so analyses have figures to shape (and to get wrong).
    live_api.analytics.ingest(connection_attempts() + behaviour() + syncs())
    admin = live_api.as_key("admin")
    # A batch answers 200 with a verdict per event, so that one bad event cannot reject
    # its neighbours: there, invalid data must come back as rejected events instead.
    per_event = operation.label.endswith("/events/batch") and mode is GenerationMode.NEGATIVE

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=25,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate(
            base_url=live_api.url,
            headers=admin,
            # Valid by the document is not always meaningful (an unknown timezone, a
            # start without an end): such requests get a 422, which is the point.
            excluded_checks=[positive_data_acceptance]
            + ([negative_data_rejection] if per_event else []),
        )
        if per_event and response.status_code == 200:
            answer = response.json()
            assert answer["rejected"] >= 1, (case.body, answer)

    check()


# -- every timezone, every date, every bucket and dimension: never a 5xx ----------------------

#: Every name Python's tz database knows (with ``localtime``, which names no zone), and
#: a few it does not.
TIMEZONES = sorted(available_timezones() | {"localtime", "UTC", "Mars/Olympus", "+05:00"})
#: Offsets of the datetimes sent: naive, UTC, and the extremes.
OFFSETS = [None, UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12, minutes=-30))]
moments = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59),
    timezones=st.sampled_from(OFFSETS),
).map(datetime.isoformat)
periods = st.sampled_from(["1h", "24h", "7d", "90d", "1830d", "1831d", "9999d", "0h", "\u0663d"])
FUZZ = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _window() -> st.SearchStrategy[dict[str, str]]:
    return st.one_of(
        st.fixed_dictionaries({"time_period": periods}),
        st.fixed_dictionaries({"start": moments, "end": moments}),
    )


metric_queries = st.fixed_dictionaries(
    {
        "metrics": st.lists(st.sampled_from(sorted(CATALOG)), min_size=1, max_size=3),
        "dimensions": st.lists(st.sampled_from(sorted(DIMENSIONS)), max_size=2),
        "bucket": st.none() | st.sampled_from([b.value for b in Bucket]),
        "timezone": st.sampled_from(TIMEZONES),
        "compare": st.booleans(),
    }
).flatmap(lambda body: _window().map(lambda window: {**body, **window}))


def _not_5xx(response: httpx.Response) -> None:
    assert response.status_code < 500, (
        response.request.url,
        response.request.content,
        response.text,
    )
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", response.text


def test_metric_queries_over_any_timezone_date_bucket_and_dimension_never_fail(
    live_api: LiveAPI,
) -> None:
    live_api.analytics.ingest(connection_attempts() + behaviour() + syncs())
    analyst = live_api.as_key("analyst")

    @given(body=metric_queries)
    @FUZZ
    def check(body: dict[str, object]) -> None:
        _not_5xx(live_api.client.post(f"{PREFIX}/metrics/query", json=body, headers=analyst))

    check()


def _get_routes() -> list[tuple[str, set[str]]]:
    """Every GET route with a policy, and the names of its query and path parameters."""
    paths = create_app().openapi()["paths"]
    return [
        (path, {p["name"] for p in operation.get("parameters", [])})
        for path, operations in sorted(paths.items())
        for method, operation in operations.items()
        if method == "get" and "x-access" in operation and path not in ENDLESS
    ]


@pytest.mark.parametrize(("path", "names"), _get_routes(), ids=[p for p, _ in _get_routes()])
def test_every_get_route_over_any_timezone_and_date_never_fails(
    live_api: LiveAPI, path: str, names: set[str]
) -> None:
    live_api.analytics.ingest(connection_attempts() + behaviour() + syncs())
    admin = live_api.as_key("admin")
    parameters = {
        "timezone": st.sampled_from(TIMEZONES),
        "lookback": periods,
        "include_history": st.sampled_from(["true", "false", "yes"]),
        "feature": st.sampled_from(["account_linking", "spending_analysis", "nope"]),
    }

    @given(
        window=_window(),
        chosen=st.fixed_dictionaries(
            {}, optional={k: v for k, v in parameters.items() if k in names}
        ),
    )
    @settings(FUZZ, max_examples=12)
    def check(window: dict[str, str], chosen: dict[str, str]) -> None:
        query = {**chosen, **({k: v for k, v in window.items() if k in names})}
        url = path.replace("{user_id}", "u1").replace("{key_id}", "nokey")
        _not_5xx(live_api.client.get(url, params=query, headers=admin))

    check()


def test_every_timezone_python_knows_is_answered_or_refused(live_api: LiveAPI) -> None:
    """All of them, not a sample: each is accepted by every engine in use or refused (422)."""
    live_api.analytics.ingest(syncs())
    analyst = live_api.as_key("analyst")
    window = {"start": T0.isoformat(), "end": NOW.isoformat()}

    def ask(zone: str) -> int:
        body = {"metrics": ["sync_runs"], "bucket": "day", "timezone": zone, **window}
        response = live_api.client.post(f"{PREFIX}/metrics/query", json=body, headers=analyst)
        _not_5xx(response)
        return response.status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = dict(zip(TIMEZONES, pool.map(ask, TIMEZONES), strict=True))
    assert statuses["localtime"] == statuses["Mars/Olympus"] == 422
    assert statuses["Europe/London"] == statuses["Asia/Kathmandu"] == statuses["UTC"] == 200
