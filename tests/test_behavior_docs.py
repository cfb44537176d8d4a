"""docs/behavior.md: its Python examples run as written, in order, on each engine, and print
what the page says they print."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from banking_analytics import BankingPerformanceAnalytics

PAGE = Path(__file__).parents[1] / "docs" / "behavior.md"


def test_behavior_docs_examples_run(store_url: str) -> None:
    text = PAGE.read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert len(blocks) >= 4
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        namespace: dict[str, object] = {"analytics": analytics}
        for number, block in enumerate(blocks, 1):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(block, f"docs/behavior.md example {number}", "exec"), namespace)
            # A printed line is followed in the example by a comment saying what it prints.
            said = [line[2:] for line in block.splitlines() if line.startswith("# ")]
            printed = out.getvalue().splitlines()
            if printed:
                assert printed == said[-len(printed) :], (number, printed)
