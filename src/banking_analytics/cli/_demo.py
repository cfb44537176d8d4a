"""The demo's own store: ``demo`` replaces a DuckDB file only if it made it (or with --fresh).

When the demo creates its store it writes a marker beside it,
``<store>.demo.json``, recording the file's device and inode. A file is the
demo's own while the marker beside it names that very file: a store copied or
moved into the demo's place is a different file, and is refused like any other.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["is_demo_store", "mark_demo_store", "marker_of"]


def marker_of(store: Path) -> Path:
    """Where the marker of a demo store lives: beside it."""
    return store.with_name(f"{store.name}.demo.json")


def _identity(store: Path) -> dict[str, int | str]:
    found = store.stat()
    return {"made_by": "banking-analytics demo", "device": found.st_dev, "inode": found.st_ino}


def mark_demo_store(store: Path) -> None:
    """Record that the demo made ``store`` (which must exist)."""
    marker_of(store).write_text(json.dumps(_identity(store)) + "\n")


def is_demo_store(store: Path) -> bool:
    """Whether ``store`` is the file a demo made, as the marker beside it records."""
    try:
        recorded = json.loads(marker_of(store).read_text())
        return bool(recorded == _identity(store))
    except (OSError, ValueError):
        return False
