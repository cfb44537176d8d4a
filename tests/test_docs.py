"""Generated documentation stays in step with the code."""

from pathlib import Path

from banking_analytics.events._reference import render_reference

DOCS = Path(__file__).parents[1] / "docs"


def test_event_reference_is_up_to_date() -> None:
    current = (DOCS / "events.md").read_text()
    assert current == render_reference(), "run: python -m banking_analytics.events > docs/events.md"
