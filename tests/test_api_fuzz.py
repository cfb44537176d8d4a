"""Schemathesis against the app's own OpenAPI document, every operation, over real HTTP:
no input yields a 5xx, every response conforms to the document, and data the
document forbids is refused (positive and negative generation, admin credentials).

Hypothesis drives Schemathesis' strategies directly: its pytest plugin does not
run on pytest 9.2 (it reads a private attribute pytest removed).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from api_fixtures import LiveAPI
from banking_analytics.api import create_app
from test_metrics_handworked import behaviour, connection_attempts, syncs

SCHEMA = schemathesis.openapi.from_dict(create_app().openapi())
# The credentials are ours; generated Authorization headers would only test the 401 path.
SCHEMA.config.generation.update(with_security_parameters=False, allow_x00=True)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


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
