"""Generated documentation stays in step with the code."""

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.events._reference import render_reference
from banking_analytics.metrics._reference import render_reference as render_catalogue
from banking_analytics.simulate import SimulationConfig, run_simulation
from banking_analytics.vocabulary import EventType

DOCS = Path(__file__).parents[1] / "docs"


def test_event_reference_is_up_to_date() -> None:
    current = (DOCS / "events.md").read_text()
    assert current == render_reference(), "run: python -m banking_analytics.events > docs/events.md"


def test_metric_catalogue_is_up_to_date() -> None:
    current = (DOCS / "metrics-catalog.md").read_text()
    assert current == render_catalogue(), (
        "run: python -m banking_analytics.metrics > docs/metrics-catalog.md"
    )


def test_readme_examples_run(store_url: str) -> None:
    """Every Python example of the README, as written, in order, over one store: the first
    records a metric; the analytics example reads a simulated history."""
    readme = (DOCS.parent / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    assert len(blocks) >= 2
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        simulate_into(analytics)
    namespace: dict[str, object] = {}
    for number, block in enumerate(blocks, 1):
        for url in ("duckdb:///data/analytics.duckdb", "duckdb:///demo-data/analytics.duckdb"):
            block = block.replace(url, store_url)
        exec(compile(block, f"README.md example {number}", "exec"), namespace)
    assert str(namespace["metric_id"]).count("-") == 4
    assert len(namespace["engagement"].rows) == 31  # type: ignore[attr-defined]


def simulate_into(analytics: BankingPerformanceAnalytics) -> None:
    """A small simulated history ending now."""

    def sink(event_type: EventType, chunk: pa.Table) -> None:
        analytics.ingest_arrow(chunk, event_type=event_type)

    run_simulation(SimulationConfig(users=150, days=100, seed=3, end=datetime.now(UTC)), sink)


def test_metric_docs_examples_run_in_order(store_url: str) -> None:
    """Every Python example of docs/metrics.md, as written, one after the other over a
    simulated store (``analytics`` is the facade on it, as in the README)."""
    blocks = [
        b.split("```", 1)[0] for b in (DOCS / "metrics.md").read_text().split("```python\n")[1:]
    ]
    assert len(blocks) >= 3
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        simulate_into(analytics)
        namespace: dict[str, object] = {"analytics": analytics}
        for number, block in enumerate(blocks, 1):
            # An example that opens a store of its own opens the test's (a second handle).
            block = block.replace("duckdb:///data/analytics.duckdb", store_url)
            exec(compile(block, f"docs/metrics.md example {number}", "exec"), namespace)


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


def test_architecture_example_runs() -> None:
    """The facade's two spellings of an analysis (namespace and flat method) agree."""
    page = (DOCS / "architecture.md").read_text()
    example = page.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(example, "architecture.md", "exec"), {})


def test_ingestion_docs_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The commit-listener example of docs/ingestion.md, as written (an in-memory store)."""
    example = (DOCS / "ingestion.md").read_text().split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(example, "docs/ingestion.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "[frozenset({'behavior_events'})]"


def test_revenue_docs_examples_run(store_url: str, tmp_path: Path) -> None:
    """docs/revenue.md: its command loads a rates file as written (in a folder holding
    one), and its Python examples run in order over a simulated store."""
    text = (DOCS / "revenue.md").read_text()
    [command] = [b.split("```", 1)[0] for b in text.split("```bash\n")[1:]]
    (tmp_path / "rates.csv").write_text("currency,valid_from,rate\nEUR,2026-01-01,1.08\n")
    cli = Path(sys.executable).with_name("banking-analytics")
    line = command.strip().replace("banking-analytics", str(cli), 1)
    line = line.replace("duckdb:///data/analytics.duckdb", f"duckdb:///{tmp_path}/rates.duckdb")
    done = subprocess.run(line, shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "loaded 1 new exchange rate" in done.stdout
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert len(blocks) >= 2
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        simulate_into(analytics)
        namespace: dict[str, object] = {"analytics": analytics}
        for number, block in enumerate(blocks, 1):
            exec(compile(block, f"docs/revenue.md example {number}", "exec"), namespace)
    assert namespace["series"].points[-1].mrr_end > 0  # type: ignore[attr-defined]
