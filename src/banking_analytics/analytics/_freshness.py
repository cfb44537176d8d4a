"""Sync freshness: how long since each connection's data last refreshed.

For a connection with expected sync interval ``E`` (the largest
``expected_interval_s`` its sync runs report) and ``freshness = now - last
successful (or partial) sync``:

* NORMAL   when freshness ≤ 1.5·E
* DELAYED  when 1.5·E < freshness ≤ 4·E
* STOPPED  when freshness > 4·E, or no sync of it succeeded in the lookback.

Connections are those with any sync run in the lookback; staleness is about
connectivity, not data volume (Plaid's ``last_successful_update`` counts
refreshes that brought nothing new).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import pyarrow as pa
import sqlglot
from numpy.typing import NDArray
from sqlglot import exp

from banking_analytics.analytics._institutions import InstitutionCatalogue
from banking_analytics.events import SCHEMAS
from banking_analytics.metrics import (
    CATALOG,
    DataVersions,
    MetricService,
    Renderer,
    Statement,
    TimeWindow,
    aggregate,
    parse_time_period,
    to_records,
    window_condition,
)
from banking_analytics.store.statements import column
from banking_analytics.vocabulary import EventType

__all__ = [
    "DEFAULT_EXPECTED_INTERVAL",
    "RefreshState",
    "SyncFreshness",
    "refresh_state",
    "refresh_states",
]

#: Assumed when a connection's sync runs report no expected interval (Plaid: 1-4 a day).
DEFAULT_EXPECTED_INTERVAL = timedelta(hours=24)
DELAYED_AFTER = 1.5
STOPPED_AFTER = 4.0


class RefreshState(StrEnum):
    NORMAL = "NORMAL"
    DELAYED = "DELAYED"
    STOPPED = "STOPPED"


_STATES = tuple(RefreshState)


def refresh_state(freshness: timedelta | None, expected: timedelta) -> RefreshState:
    """The refresh state of a connection last refreshed ``freshness`` ago (None: never)."""
    seconds = np.array([np.nan if freshness is None else freshness.total_seconds()])
    return _STATES[int(refresh_states(seconds, np.array([expected.total_seconds()]))[0])]


def refresh_states(
    freshness_s: NDArray[np.float64], expected_s: NDArray[np.float64]
) -> NDArray[np.int64]:
    """Indices into ``RefreshState`` of many connections; NaN freshness means never refreshed."""
    stopped = np.isnan(freshness_s) | (freshness_s > STOPPED_AFTER * expected_s)
    delayed = freshness_s > DELAYED_AFTER * expected_s
    return np.where(stopped, 2, np.where(delayed, 1, 0))


_SYNC_RUNS = SCHEMAS[EventType.SYNC_RUN].table
#: What a connection is reported with; it is counted per institution x aggregator x feature.
_CONNECTION = ("connection_id", "institution_id", "aggregator", "feature")


def _latest_syncs(renderer: Renderer) -> exp.Select:
    """Every connection with a sync run in a window ``[?, ?)``: its ``_CONNECTION`` columns,
    ``last_success_at`` (catalogue metric ``sync_last_success_at``) and
    ``expected_interval_s`` (``sync_expected_interval_s``)."""
    return (
        sqlglot.select(
            *(column(name) for name in _CONNECTION),
            aggregate(CATALOG["sync_last_success_at"], renderer).as_("last_success_at"),
            aggregate(CATALOG["sync_expected_interval_s"], renderer).as_("expected_interval_s"),
        )
        .from_(_SYNC_RUNS)
        .where(window_condition())
        .group_by(*(column(name) for name in _CONNECTION))
    )


class SyncFreshness:
    """Computes refresh states from the latest sync times a statement of the metric layer reads."""

    def __init__(self, metrics: MetricService) -> None:
        self._metrics = metrics
        self._catalogue = InstitutionCatalogue(metrics)

    def sync_freshness(
        self,
        lookback: str | TimeWindow = "7d",
        *,
        now: datetime | None = None,
        stale_limit: int = 50,
        versions: DataVersions | None = None,
    ) -> dict[str, Any]:
        """Refresh state of every connection synced in ``lookback``, summed up overall and per
        institution x aggregator x feature, with the ``stale_limit`` stalest connections;
        institutions carry their catalogue name (``institution_name``, None if unknown).
        """
        window = parse_time_period(lookback, now)
        table = self._metrics.run_statement(
            Statement(_latest_syncs, (window.start, window.end), (_SYNC_RUNS,)), versions
        )
        last = table["last_success_at"].cast(pa.timestamp("us", tz="UTC"))
        last_us = last.cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
        freshness_s = (window.end.timestamp() * 1e6 - last_us) / 1e6
        expected_s = table["expected_interval_s"].to_numpy(zero_copy_only=False)
        expected_s = np.where(
            np.isnan(expected_s.astype(np.float64)),
            DEFAULT_EXPECTED_INTERVAL.total_seconds(),
            expected_s.astype(np.float64),
        )
        codes = refresh_states(freshness_s, expected_s)
        states = np.array([s.value for s in _STATES], dtype=object)[codes]
        group = list(_CONNECTION[1:])
        grouped = (
            table.select(group)
            .append_column("state", pa.array(states, pa.string()))
            .group_by([*group, "state"])
            .aggregate([([], "count_all")])
        )
        groups: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
        for g in grouped.to_pylist():
            key = (g["institution_id"], g["aggregator"], g["feature"])
            groups[key][g["state"]] = g["count_all"]
        # Never refreshed first, then by how many expected intervals late.
        lateness = np.nan_to_num(freshness_s / expected_s, nan=np.inf)
        stale = np.flatnonzero(codes > 0)
        stalest = stale[np.argsort(-lateness[stale], kind="stable")][:stale_limit]
        picked = to_records(table.take(pa.array(stalest, pa.int64()))) if stale.size else []
        names = self._catalogue.names(versions)
        return {
            "time_period": window.as_dict(),
            "connections": table.num_rows,
            "states": {s.value: int(np.count_nonzero(codes == i)) for i, s in enumerate(_STATES)},
            "by_institution": [
                {
                    "institution_id": institution,
                    "institution_name": names.get(institution),
                    "aggregator": aggregator,
                    "feature": feature,
                    **{s.value: counts[s.value] for s in RefreshState},
                    "refresh_interval": _group_state(counts).value,
                }
                for (institution, aggregator, feature), counts in sorted(groups.items())
            ],
            "stalest": [
                {
                    **{name: row[name] for name in _CONNECTION},
                    "institution_name": names.get(row["institution_id"]),
                    "state": states[i],
                    "last_successful_sync": _iso(row["last_success_at"]),
                    "freshness_s": None if np.isnan(freshness_s[i]) else float(freshness_s[i]),
                    "expected_interval_s": float(expected_s[i]),
                }
                for i, row in zip(stalest, picked, strict=True)
            ],
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _group_state(counts: Counter[str]) -> RefreshState:
    """A group's refresh interval: the state most of its connections are in."""
    return max(_STATES, key=lambda s: (counts[s.value], -_STATES.index(s)))
