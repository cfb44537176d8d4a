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


def test_metric_docs_examples_run_in_order(store_url: str) -> None:
    """Every Python example of docs/metrics.md, as written, one after the other over a
    simulated store (``analytics`` is the facade on it, as in the README)."""
    from datetime import UTC, datetime

    import pyarrow as pa

    from banking_analytics import BankingPerformanceAnalytics
    from banking_analytics.simulate import SimulationConfig, run_simulation
    from banking_analytics.vocabulary import EventType

    blocks = [
        b.split("```", 1)[0] for b in (DOCS / "metrics.md").read_text().split("```python\n")[1:]
    ]
    assert len(blocks) >= 3
    with BankingPerformanceAnalytics.open(store_url) as analytics:

        def sink(event_type: EventType, chunk: pa.Table) -> None:
            analytics.ingest_arrow(chunk, event_type=event_type)

        run_simulation(SimulationConfig(users=150, days=45, seed=3, end=datetime.now(UTC)), sink)
        namespace: dict[str, object] = {"analytics": analytics}
        for number, block in enumerate(blocks, 1):
            exec(compile(block, f"docs/metrics.md example {number}", "exec"), namespace)
