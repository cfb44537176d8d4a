"""docs/insights.md's example runs as written and prints what its comments say."""

from __future__ import annotations

from pathlib import Path

import pytest

DOC = (Path(__file__).parents[1] / "docs" / "insights.md").read_text()
DOC_DB = "duckdb:///insights.duckdb"


def test_the_example_of_docs_insights_runs_as_written(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    [python] = [b.split("```", 1)[0] for b in DOC.split("```python\n")[1:]]
    exec(compile(python.replace(DOC_DB, store_url), "docs/insights.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    after_print = python.split("print(", 1)[1].splitlines()
    expected = [line.strip()[2:] for line in after_print if line.strip().startswith("# ")]
    assert len(expected) == 7
    assert printed == expected
