"""Generated documentation stays in step with the code."""

from pathlib import Path

import pytest

from banking_analytics.events._reference import render_reference
from banking_analytics.metrics._reference import render_reference as render_catalogue

DOCS = Path(__file__).parents[1] / "docs"


def test_event_reference_is_up_to_date() -> None:
    current = (DOCS / "events.md").read_text()
    assert current == render_reference(), "run: python -m banking_analytics.events > docs/events.md"


def test_metric_catalogue_is_up_to_date() -> None:
    current = (DOCS / "metrics-catalog.md").read_text()
    assert current == render_catalogue(), (
        "run: python -m banking_analytics.metrics > docs/metrics-catalog.md"
    )


def test_readme_example_runs(store_url: str) -> None:
    readme = (DOCS.parent / "README.md").read_text()
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    example = example.replace("duckdb:///data/analytics.duckdb", store_url)
    namespace: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert str(namespace["metric_id"]).count("-") == 4


def test_custom_statement_example_runs(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    section = (DOCS / "metrics.md").read_text().split("## Custom statements\n", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    example = example.replace("duckdb:///data/analytics.duckdb", store_url)
    exec(compile(example, "docs/metrics.md", "exec"), {})
    # Three successful syncs: two of two connections on the first day, one on the second.
    assert capsys.readouterr().out.splitlines() == [
        "2026-11-02 00:00:00+00:00 ins_3 2 2",
        "2026-11-03 00:00:00+00:00 ins_3 1 1",
    ]
