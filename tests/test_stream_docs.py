"""docs/stream.md's example runs as written against a served API, on every engine, and
prints what it says it prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from api_fixtures import api_settings
from api_server import running
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.access import KeyStore, Role
from banking_analytics.monitor import Rule
from test_monitor_evaluate import MINUTE, RULE, T0, hand_worked

DOC = (Path(__file__).parents[1] / "docs" / "stream.md").read_text()


def test_the_example_of_docs_stream_replays_the_transitions_as_it_says(
    analytics: BankingPerformanceAnalytics, capsys: pytest.CaptureFixture[str]
) -> None:
    analytics.ingest(hand_worked())
    analytics.monitor.apply([Rule.from_dict(RULE)], "docs")
    analytics.monitor.evaluate(T0 + 30 * MINUTE)
    key = KeyStore(analytics.engine).create("docs", Role.ANALYST).secret
    [example] = [b.split("```", 1)[0] for b in DOC.split("```python\n")[1:]]
    with running(api_settings(analytics), analytics=analytics) as url:
        code = example.replace("http://127.0.0.1:8000", url).replace('"ba_live_..."', f'"{key}"')
        exec(compile(code, "docs/stream.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    expected = [line[2:] for line in example.splitlines() if line.startswith("# ")]
    assert printed == expected
    assert printed == [
        "1 ins_a inactive → pending",
        "2 ins_b inactive → pending",
        "3 ins_c inactive → pending",
    ]
