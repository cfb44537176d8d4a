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

from banking_analytics.metrics import MetricQuery, MetricService, TimeWindow, parse_time_period

__all__ = ["DEFAULT_EXPECTED_INTERVAL", "RefreshState", "SyncFreshness"]

#: Assumed when a connection's sync runs report no expected interval (Plaid: 1-4 a day).
DEFAULT_EXPECTED_INTERVAL = timedelta(hours=24)
DELAYED_AFTER = 1.5
STOPPED_AFTER = 4.0


class RefreshState(StrEnum):
    NORMAL = "NORMAL"
    DELAYED = "DELAYED"
    STOPPED = "STOPPED"


def refresh_state(freshness: timedelta | None, expected: timedelta) -> RefreshState:
    """The refresh state of a connection last refreshed ``freshness`` ago (None: never)."""
    if freshness is None or freshness > STOPPED_AFTER * expected:
        return RefreshState.STOPPED
    if freshness > DELAYED_AFTER * expected:
        return RefreshState.DELAYED
    return RefreshState.NORMAL


class SyncFreshness:
    """Computes refresh states from the latest sync times the metric layer provides."""

    def __init__(self, metrics: MetricService) -> None:
        self._metrics = metrics

    def sync_freshness(
        self,
        lookback: str | TimeWindow = "7d",
        *,
        now: datetime | None = None,
        stale_limit: int = 50,
    ) -> dict[str, Any]:
        """Refresh state of every connection synced in ``lookback``, summed up overall and per
        institution x aggregator x feature, with the ``stale_limit`` stalest connections.
        """
        window = parse_time_period(lookback, now)
        result = self._metrics.run(
            MetricQuery.build(
                ["sync_last_success_at", "sync_last_run_at", "sync_expected_interval_s"],
                window,
                dimensions=["connection", "institution", "aggregator", "feature"],
            )
        )
        overall: Counter[str] = Counter()
        groups: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
        connections: list[dict[str, Any]] = []
        for row in result.rows:
            last_success = row["sync_last_success_at"]
            interval = row.number("sync_expected_interval_s")
            expected = timedelta(seconds=interval) if interval else DEFAULT_EXPECTED_INTERVAL
            freshness = window.end - last_success if isinstance(last_success, datetime) else None
            state = refresh_state(freshness, expected)
            dims = row.dimensions
            overall[state] += 1
            groups[(str(dims["institution"]), str(dims["aggregator"]), str(dims["feature"]))][
                state
            ] += 1
            connections.append(
                {
                    "connection_id": dims["connection"],
                    "institution_id": dims["institution"],
                    "aggregator": dims["aggregator"],
                    "feature": dims["feature"],
                    "state": state.value,
                    "last_successful_sync": last_success.isoformat()
                    if isinstance(last_success, datetime)
                    else None,
                    "freshness_s": freshness.total_seconds() if freshness is not None else None,
                    "expected_interval_s": expected.total_seconds(),
                }
            )
        # Never refreshed first, then by how many expected intervals they are late.
        stale = sorted(
            (c for c in connections if c["state"] != RefreshState.NORMAL),
            key=lambda c: (
                c["freshness_s"] is not None,
                -(c["freshness_s"] or 0) / c["expected_interval_s"],
            ),
        )
        return {
            "time_period": window.as_dict(),
            "connections": len(connections),
            "states": {s.value: overall[s] for s in RefreshState},
            "by_institution": [
                {
                    "institution_id": institution,
                    "aggregator": aggregator,
                    "feature": feature,
                    **{s.value: counts[s] for s in RefreshState},
                    "refresh_interval": _group_state(counts).value,
                }
                for (institution, aggregator, feature), counts in sorted(groups.items())
            ],
            "stalest": stale[:stale_limit],
        }


def _group_state(counts: Counter[str]) -> RefreshState:
    """A group's refresh interval: the state most of its connections are in."""
    return max(RefreshState, key=lambda s: (counts[s], -list(RefreshState).index(s)))
