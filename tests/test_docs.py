"""Generated documentation stays in step with the code."""

from pathlib import Path

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


def test_architecture_example_runs() -> None:
    """The facade's two spellings of an analysis (namespace and flat method) agree."""
    page = (DOCS / "architecture.md").read_text()
    example = page.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(example, "architecture.md", "exec"), {})
