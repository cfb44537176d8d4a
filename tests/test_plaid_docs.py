"""docs/plaid.md runs as written, and its mapping table names every webhook the code maps."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from banking_analytics.ingest import map_plaid_webhook, read_plaid_webhook
from banking_analytics.ingest._plaid import _ITEM_STATES, _TRANSACTIONS_CODES

DOC = Path(__file__).parents[1] / "docs" / "plaid.md"
_AT = datetime(2026, 12, 1, tzinfo=UTC)


def test_the_example_runs() -> None:
    (python,) = [b.split("```", 1)[0] for b in DOC.read_text().split("```python\n")[1:]]
    exec(compile(python, "docs/plaid.md", "exec"), {})


def test_the_table_names_every_mapped_webhook_and_no_other() -> None:
    table = DOC.read_text().split("## What is mapped", 1)[1].split("\n\n")[2]
    documented = set()
    for row in table.splitlines()[2:]:
        first = row.split("|")[1]
        kind = first.split()[0]
        documented |= {(kind, code) for code in re.findall(r"`([A-Z_]+)`", first)}
    in_code = {
        ("ITEM", "ERROR"),
        *(("ITEM", code) for code in _ITEM_STATES),
        *(("TRANSACTIONS", code) for code in _TRANSACTIONS_CODES),
        ("LINK", "EVENTS"),
        ("LINK", "SESSION_FINISHED"),
    }
    assert documented == in_code
    for kind, code in in_code:
        body = {"webhook_type": kind, "webhook_code": code, "item_id": "i", "link_session_id": "s"}
        webhook = read_plaid_webhook(body)
        mapped = map_plaid_webhook(webhook, delivery_id="d:1", at=_AT, origin=None)
        assert "is not mapped" not in (mapped.ignored or ""), (kind, code)


def test_the_readme_and_the_api_reference_point_here() -> None:
    root = DOC.parents[1]
    assert "docs/plaid.md" in (root / "README.md").read_text()
    api = (root / "docs" / "api.md").read_text()
    assert "`POST /webhooks/plaid`" in api
    assert "`GET /connections/items`" in api
