"""The institution catalogue's recorded names: what a catalogue says an institution is called.

Events name institutions by id (``ins_5``); ``connection_attempt`` events may also
carry the display name the client saw. A catalogue source that knows better (the
simulator's world, an aggregator's institution list, a Plaid webhook) records
names here with :func:`record_institutions`: it adds a row for each institution
whose name or aggregator differs from the latest recorded one, so recording the
same list again adds nothing and the latest row wins (an upsert, kept as history).
``analytics.performance.institutions`` reads the catalogue: recorded names first,
then the latest name the events carry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from banking_analytics.events import IDENTIFIER_PATTERN, Kind, arrow_type
from banking_analytics.store import INSTITUTIONS, Engine
from banking_analytics.vocabulary import Aggregator

__all__ = ["InstitutionName", "record_institutions"]

_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
#: As long as an event's ``institution_id`` and ``institution_name`` may be.
_MAX_ID, _MAX_NAME = 128, 256


@dataclass(frozen=True, slots=True)
class InstitutionName:
    """One institution as a catalogue names it; ``aggregator`` None when it does not say."""

    institution_id: str
    name: str
    aggregator: Aggregator | None = None

    def __post_init__(self) -> None:
        if len(self.institution_id) > _MAX_ID or not _IDENTIFIER.match(self.institution_id):
            raise ValueError(
                f"institution_id {self.institution_id[:_MAX_ID]!r} is not an identifier "
                f"(1 to {_MAX_ID} of A-Z a-z 0-9 _ . : @ + = / -)"
            )
        name = " ".join(self.name.split())
        if not 1 <= len(name) <= _MAX_NAME or not name.isprintable():
            raise ValueError(
                f"the name of {self.institution_id} must be 1 to {_MAX_NAME} printable characters"
            )
        object.__setattr__(self, "name", name)
        if self.aggregator is not None:
            object.__setattr__(self, "aggregator", Aggregator(self.aggregator))


def record_institutions(
    engine: Engine,
    institutions: Iterable[InstitutionName],
    *,
    source: str,
    now: datetime | None = None,
) -> int:
    """Record names (``source`` says who named them: ``simulator``, ``plaid``, ...); how
    many rows were added. An institution whose latest recorded name and aggregator are
    these already adds none; one listed twice takes its last entry."""
    wanted = {i.institution_id: i for i in institutions}
    if not wanted:
        return 0
    at = now or datetime.now(UTC)
    with engine.begin() as tx:
        tx.lock(INSTITUTIONS)
        # Only these institutions' rows: the table keeps every name ever recorded.
        ids = list(wanted)
        # Imported here: importing the package must not load sqlglot (tests/test_public_api).
        from sqlglot import exp

        from banking_analytics.store.statements import column, select_all

        mine = select_all(INSTITUTIONS).where(
            column("institution_id").isin(*(exp.Placeholder() for _ in ids))
        )
        stored = tx.execute(mine.sql(engine.dialect), ids).to_pylist()
        latest: dict[str, tuple[str, str | None]] = {}
        for row in sorted(stored, key=lambda r: r["recorded_at"]):
            latest[row["institution_id"]] = (row["name"], row["aggregator"])
        fresh = [
            i
            for i in wanted.values()
            if latest.get(i.institution_id) != (i.name, i.aggregator and i.aggregator.value)
        ]
        if fresh:
            tx.append(
                INSTITUTIONS,
                pa.table(
                    {
                        "institution_id": pa.array([i.institution_id for i in fresh], pa.string()),
                        "aggregator": pa.array(
                            [i.aggregator and i.aggregator.value for i in fresh], pa.string()
                        ),
                        "name": pa.array([i.name for i in fresh], pa.string()),
                        "source": pa.array([source] * len(fresh), pa.string()),
                        "recorded_at": pa.array([at] * len(fresh), arrow_type(Kind.TIMESTAMP)),
                    }
                ),
            )
    return len(fresh)
