"""The command line writes durations in ISO 8601, as the API does (``PT6H``, not ``6:00:00``)."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from pydantic import TypeAdapter
from typer.testing import CliRunner

from banking_analytics.cli import app, iso_duration


@pytest.mark.parametrize(
    ("span", "written"),
    [
        (timedelta(hours=6), "PT6H"),
        (timedelta(days=1), "P1D"),
        (timedelta(0), "PT0S"),
        (timedelta(minutes=15), "PT15M"),
        (timedelta(seconds=1.5), "PT1.5S"),
        (timedelta(days=2, hours=3, minutes=4, seconds=5, microseconds=60), "P2DT3H4M5.00006S"),
        (timedelta(seconds=-90), "-PT1M30S"),
    ],
)
def test_hand_worked_durations(span: timedelta, written: str) -> None:
    assert iso_duration(span) == written


def test_as_pydantic_writes_them_for_the_api() -> None:
    api = TypeAdapter(timedelta)
    rng = random.Random(15)
    for _ in range(2_000):
        span = timedelta(
            days=rng.choice([0, 0, 1, 40]),
            seconds=rng.choice([0, rng.randrange(86_400)]),
            microseconds=rng.choice([0, rng.randrange(1_000_000)]),
        ) * rng.choice([1, -1])
        assert iso_duration(span) == api.dump_python(span, mode="json"), repr(span)


def test_health_as_json_writes_its_threshold_as_the_api_does(store_url: str) -> None:
    result = CliRunner().invoke(app, ["health", "--json", "--db", store_url])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["thresholds"]["stale_after"] == "PT6H"  # the default 6 h
