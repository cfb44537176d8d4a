"""The institution catalogue: each institution's display name and aggregator, by id.

An institution is named, in this order, by

1. the latest name a catalogue recorded for it (``institutions`` table, written by
   :func:`banking_analytics.ingest.record_institutions`: the simulator's world, an
   aggregator's institution list or webhook);
2. else the latest ``institution_name`` its ``connection_attempt`` events carry
   (latest by ``occurred_at``; a tie goes to the name sorting first).

An institution named by neither has no entry: readers show its id. The catalogue is
one statement over both tables, run by the metric layer and cached until either
changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from banking_analytics.events import SCHEMAS
from banking_analytics.metrics import DataVersions, MetricService, Renderer, Statement
from banking_analytics.store import INSTITUTIONS
from banking_analytics.store.statements import column
from banking_analytics.vocabulary import EventType

__all__ = ["CatalogueEntry", "InstitutionCatalogue", "display_name"]

_ATTEMPTS = SCHEMAS[EventType.CONNECTION_ATTEMPT].table
_TABLES = (INSTITUTIONS.name, _ATTEMPTS)


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """An institution as the catalogue knows it; ``source`` is who named it (``events``
    when only its events did)."""

    institution_id: str
    name: str
    aggregator: str | None
    source: str


def display_name(institution_id: str, names: dict[str, str]) -> str:
    """What a person reads for an institution: its name, else its id."""
    return names.get(institution_id, institution_id)


class InstitutionCatalogue:
    """Reads the catalogue through the metric layer (see the module)."""

    def __init__(self, metrics: MetricService) -> None:
        self._metrics = metrics

    def entries(self, versions: DataVersions | None = None) -> dict[str, CatalogueEntry]:
        """Every named institution, by id. ``versions`` may be a reading shared with other
        queries; the tables it lacks are read now."""
        missing = [t for t in _TABLES if versions is None or t not in versions]
        read = {**(versions or {}), **(self._metrics.versions(missing) if missing else {})}
        rows = self._metrics.run_statement(Statement(_named, (), _TABLES), read).to_pylist()
        # The last row of an institution wins: recorded names outrank the events', then
        # the latest, then (two stable sorts) the name sorting first.
        rows.sort(key=lambda r: r["name"], reverse=True)
        rows.sort(key=lambda r: (r["recorded"], r["seen_at"]))
        found = {
            row["institution_id"]: CatalogueEntry(
                row["institution_id"], row["name"], row["aggregator"], row["source"] or "events"
            )
            for row in rows
        }
        return dict(sorted(found.items()))

    def names(self, versions: DataVersions | None = None) -> dict[str, str]:
        """Each named institution's display name, by id."""
        return {key: e.name for key, e in self.entries(versions).items()}


def _named(renderer: Renderer) -> exp.Query:
    """Recorded names (``recorded`` 1, each row) and the names events carry (``recorded``
    0, one row per institution, aggregator and name with its latest ``occurred_at``):
    columns ``institution_id``, ``aggregator``, ``name``, ``seen_at``, ``recorded``,
    ``source``."""
    del renderer  # plain columns and aggregates: nothing dialect-specific
    recorded = sqlglot.select(
        column("institution_id"),
        column("aggregator"),
        column("name"),
        column("recorded_at").as_("seen_at"),
        exp.Literal.number(1).as_("recorded"),
        column("source"),
    ).from_(exp.to_table(INSTITUTIONS.name))
    carried = (
        sqlglot.select(
            column("institution_id"),
            column("aggregator"),
            column("institution_name").as_("name"),
            exp.Max(this=column("occurred_at")).as_("seen_at"),
            exp.Literal.number(0).as_("recorded"),
            exp.cast(exp.null(), "text").as_("source"),
        )
        .from_(_ATTEMPTS)
        .where(column("institution_name").is_(exp.null()).not_())
        .group_by(column("institution_id"), column("aggregator"), column("institution_name"))
    )
    return exp.union(recorded, carried, distinct=False)
