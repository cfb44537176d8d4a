"""The demo's own store: ``demo`` reuses or replaces a DuckDB file only if it made it.

When the demo creates its store it writes a marker beside it,
``<store>.demo.json``, recording the file's device and inode. A file is the
demo's own while the marker beside it names that very file: a store copied or
moved into the demo's place is a different file, and is refused like any other.
The marker also records the world simulated into the store (users, days, seed,
end) once it is complete, and the admin key the demo printed: a second
``make demo`` with the same world serves that store with that key (the marker
is readable by its owner only).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "DEMO_WORLD",
    "demo_record",
    "is_demo_store",
    "mark_demo_store",
    "marker_of",
    "update_demo_record",
]

#: The world ``demo`` simulates: enough sign-ups a day that the dashboard's panels have
#: figures resting on the minimum sample (link attempts come mostly from new users, so
#: users per day of history is what counts: 444 here), as many events a day as a store
#: the page loads in a second from (the syncs of 20k users), and few enough institutions,
#: with a long tail, that most of their products are judged.
DEMO_WORLD = {"users": 20_000, "days": 45, "seed": 42, "institutions": 20}


def marker_of(store: Path) -> Path:
    """Where the marker of a demo store lives: beside it."""
    return store.with_name(f"{store.name}.demo.json")


def _identity(store: Path) -> dict[str, int | str]:
    found = store.stat()
    return {"made_by": "banking-analytics demo", "device": found.st_dev, "inode": found.st_ino}


def _recorded(store: Path) -> dict[str, Any]:
    try:
        recorded = json.loads(marker_of(store).read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _write(store: Path, marker: dict[str, Any]) -> None:
    # Created owner-only before anything is written: it may hold an admin key.
    fd = os.open(marker_of(store), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(marker) + "\n")


def mark_demo_store(store: Path) -> None:
    """Record that the demo made ``store`` (which must exist)."""
    _write(store, _identity(store))


def is_demo_store(store: Path) -> bool:
    """Whether ``store`` is the file a demo made, as the marker beside it records."""
    try:
        identity = _identity(store)
    except OSError:
        return False
    recorded = _recorded(store)
    return all(recorded.get(name) == value for name, value in identity.items())


def demo_record(store: Path) -> dict[str, Any]:
    """What the marker of a demo store records (empty if it is not the demo's)."""
    return _recorded(store) if is_demo_store(store) else {}


def update_demo_record(store: Path, **fields: Any) -> None:
    """Add ``fields`` to the marker of the demo's ``store`` (the world made, the key printed)."""
    _write(store, {**_recorded(store), **fields})
