"""Institution health: HEALTHY / DEGRADED / DOWN / UNKNOWN per institution, aggregator and product.

Health is judged per *aggregator product*, as Plaid reports it: link attempts
make ``item_logins``; sync runs make the product their feature's data comes
from (``transactions_updates``, ``balance``, ...).

Each hour ``h`` is judged on a trailing window ending with it: one hour, or
the shortest of 2, 3 or 6 hours that holds ``min_sample`` events of the
bank-health denominator (successes + institution failures + aggregator
failures). With ``n`` such events and ``s`` successes:

* UNKNOWN when even 6 hours hold fewer than ``min_sample``;
* DOWN when ``s = 0``, or the success rate is clearly below ``down`` (0.50);
* DEGRADED when it is clearly below ``healthy`` (0.90);
* HEALTHY otherwise.

"Clearly below t" means the upper end of the rate's Wilson score interval
(``z`` = 1.96, 95%) is below t, so that a dip a small sample makes by chance
does not flag a healthy bank (``z = 0`` gives the plain rule ``s/n < t``).
A state changes only after the new state held for ``consecutive`` windows in
a row (hysteresis); ``last_state_change`` is when that change took effect.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from banking_analytics.metrics import (
    Bucket,
    MetricQuery,
    MetricService,
    TimeWindow,
    bucket_starts,
    parse_time_period,
)
from banking_analytics.vocabulary import BankingFeature, EventType

__all__ = ["PRODUCTS", "HealthState", "HealthThresholds", "InstitutionHealth", "Product"]


class HealthState(StrEnum):
    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"
    UNKNOWN = "UNKNOWN"


class Product(StrEnum):
    """Aggregator products, by Plaid's names."""

    ITEM_LOGINS = "item_logins"
    TRANSACTIONS_UPDATES = "transactions_updates"
    BALANCE = "balance"
    INVESTMENTS_UPDATES = "investments_updates"
    LIABILITIES_UPDATES = "liabilities_updates"


#: The product whose data each feature's sync runs fetch.
PRODUCTS: dict[BankingFeature, Product] = {
    BankingFeature.ACCOUNT_LINKING: Product.ITEM_LOGINS,
    BankingFeature.TRANSACTION_SYNC: Product.TRANSACTIONS_UPDATES,
    BankingFeature.BALANCE_MONITORING: Product.BALANCE,
    BankingFeature.SPENDING_ANALYSIS: Product.TRANSACTIONS_UPDATES,
    BankingFeature.BUDGET_TRACKING: Product.TRANSACTIONS_UPDATES,
    BankingFeature.GOAL_SETTING: Product.TRANSACTIONS_UPDATES,
    BankingFeature.BILL_REMINDERS: Product.TRANSACTIONS_UPDATES,
    BankingFeature.INVESTMENT_TRACKING: Product.INVESTMENTS_UPDATES,
    BankingFeature.CREDIT_MONITORING: Product.LIABILITIES_UPDATES,
    BankingFeature.TAX_OPTIMIZATION: Product.TRANSACTIONS_UPDATES,
}

_WIDENINGS = (1, 2, 3, 6)
_SEVERITY = {
    HealthState.UNKNOWN: 0,
    HealthState.HEALTHY: 1,
    HealthState.DEGRADED: 2,
    HealthState.DOWN: 3,
}
_Entity = tuple[str, str, Product]


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    """When a window counts as healthy, degraded or down (see the module docs)."""

    healthy: float = 0.90
    down: float = 0.50
    min_sample: int = 20
    consecutive: int = 2
    z: float = 1.96
    #: Hours without enough data after which a known state falls back to UNKNOWN.
    stale_after_hours: int = 24

    def __post_init__(self) -> None:
        if not 0 <= self.down <= self.healthy <= 1:
            raise ValueError("thresholds need 0 ≤ down ≤ healthy ≤ 1")
        if min(self.min_sample, self.consecutive, self.stale_after_hours) < 1 or self.z < 0:
            raise ValueError("min_sample, consecutive and stale_after_hours must be ≥ 1; z ≥ 0")

    def judge(self, successes: int, n: int) -> HealthState:
        """The state one window's counts show."""
        code = self.judge_all(np.array([successes]), np.array([n]))[0]
        return _STATES[code]

    def judge_all(self, successes: NDArray[np.int64], n: NDArray[np.int64]) -> NDArray[np.int8]:
        """Codes (indices into the states UNKNOWN, HEALTHY, DEGRADED, DOWN) of many windows."""
        with np.errstate(divide="ignore", invalid="ignore"):
            upper = wilson_upper(successes, n, self.z)
        codes = np.where(
            (successes == 0) | (upper < self.down),
            _CODE[HealthState.DOWN],
            np.where(upper < self.healthy, _CODE[HealthState.DEGRADED], _CODE[HealthState.HEALTHY]),
        )
        return np.where(n < self.min_sample, _CODE[HealthState.UNKNOWN], codes).astype(np.int8)


def wilson_upper(
    successes: NDArray[np.int64], n: NDArray[np.int64], z: float
) -> NDArray[np.float64]:
    """Upper end of the Wilson score interval of proportions ``successes / n``.

    ``(p + z²/2n + z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``p = successes / n``.
    """
    p = successes / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    margin = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    result: NDArray[np.float64] = (centre + margin) / (1 + z2 / n)
    return result


class InstitutionHealth:
    """Computes institution health from hourly counts the metric layer provides."""

    def __init__(self, metrics: MetricService, thresholds: HealthThresholds | None = None) -> None:
        self._metrics = metrics
        self.thresholds = thresholds or HealthThresholds()

    def institution_health(
        self,
        lookback: str | TimeWindow = "7d",
        *,
        now: datetime | None = None,
        include_history: bool = False,
    ) -> dict[str, Any]:
        """The state of every institution x aggregator x product seen in ``lookback``.

        Each entry has ``state``, ``last_state_change`` (None if the state held
        all along), the latest window's counts and ``success_rate``, and with
        ``include_history`` the hourly states and the list of changes. Entries
        come worst first; ``institutions`` rolls products up to the worst state
        known per institution and aggregator.
        """
        window = parse_time_period(lookback, now)
        hours = bucket_starts(window, Bucket.HOUR, "UTC")
        warm_up = max(_WIDENINGS) - 1
        counts = self._hourly_counts(
            TimeWindow(hours[0] - timedelta(hours=warm_up), window.end, "warm-up"),
            [hours[0] + timedelta(hours=i) for i in range(-warm_up, len(hours))],
        )
        entities = sorted(counts)
        successes = np.array([counts[e][0] for e in entities], dtype=np.int64).reshape(
            len(entities), -1
        )
        totals = np.array([counts[e][1] for e in entities], dtype=np.int64).reshape(
            len(entities), -1
        )
        s, n = _trailing(successes, totals, self.thresholds.min_sample, warm_up)
        seen = self.thresholds.judge_all(s, n)
        states, changes = _hysteresis(seen, self.thresholds)
        entries = []
        for i, (institution, aggregator, product) in enumerate(entities):
            mine = changes.get(i, [])
            latest = int(n[i, -1]) if n.size else 0
            entry: dict[str, Any] = {
                "institution_id": institution,
                "aggregator": aggregator,
                "product": product.value,
                "state": _STATES[states[i, -1]].value,
                "last_state_change": _closing(hours[mine[-1][0]]) if mine else None,
                "window_sample_size": latest,
                "window_success_rate": int(s[i, -1]) / latest if latest else None,
            }
            if include_history:
                entry["history"] = [
                    {"hour": h.isoformat(), "seen": _STATES[v].value, "state": _STATES[st].value}
                    for h, v, st in zip(hours, seen[i], states[i], strict=True)
                ]
                entry["changes"] = [
                    {"at": _closing(hours[t]), "from": _STATES[a].value, "to": _STATES[b].value}
                    for t, a, b in mine
                ]
            entries.append(entry)
        entries.sort(key=lambda e: (-_SEVERITY[HealthState(e["state"])], e["institution_id"]))
        return {
            "time_period": window.as_dict(),
            "thresholds": asdict(self.thresholds),
            "products": entries,
            "institutions": _roll_up(entries),
        }

    def _hourly_counts(
        self, window: TimeWindow, hours: list[datetime]
    ) -> dict[_Entity, tuple[list[int], list[int]]]:
        """Per entity, bank-health successes and denominators for each of ``hours``."""
        versions = self._metrics.versions([EventType.CONNECTION_ATTEMPT, EventType.SYNC_RUN])
        index = {h: i for i, h in enumerate(hours)}
        counts: dict[_Entity, tuple[list[int], list[int]]] = {}
        sources = (
            ("connection_successes", "connection_health_attempts", ()),
            ("sync_successes", "sync_health_runs", ("feature",)),
        )
        for successes, total, extra in sources:
            result = self._metrics.run(
                MetricQuery.build(
                    [successes, total],
                    window,
                    dimensions=["institution", "aggregator", *extra],
                    bucket=Bucket.HOUR,
                ),
                fill_gaps=False,
                versions=versions,
            )
            for row in result.rows:
                dims = row.dimensions
                product = (
                    PRODUCTS[BankingFeature(str(dims["feature"]))] if extra else Product.ITEM_LOGINS
                )
                entity = (str(dims["institution"]), str(dims["aggregator"]), product)
                if entity not in counts:
                    counts[entity] = ([0] * len(hours), [0] * len(hours))
                at = index[row.bucket] if row.bucket is not None else None
                if at is None:
                    continue
                counts[entity][0][at] += row.count(successes)
                counts[entity][1][at] += row.count(total)
        return counts


_STATES = (HealthState.UNKNOWN, HealthState.HEALTHY, HealthState.DEGRADED, HealthState.DOWN)
_CODE = {state: code for code, state in enumerate(_STATES)}


def _closing(hour: datetime) -> str:
    """When the window of an hour closes: the moment a state seen in it takes effect."""
    return (hour + timedelta(hours=1)).isoformat()


def _trailing(
    successes: NDArray[np.int64], totals: NDArray[np.int64], min_sample: int, warm_up: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Counts of the shortest trailing window ending with each hour that holds ``min_sample``."""
    zero = np.zeros((successes.shape[0], 1), dtype=np.int64)
    cum_s = np.hstack([zero, np.cumsum(successes, axis=1)])
    cum_n = np.hstack([zero, np.cumsum(totals, axis=1)])
    end = np.arange(warm_up + 1, successes.shape[1] + 1)

    def trailing(width: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        return cum_s[:, end] - cum_s[:, end - width], cum_n[:, end] - cum_n[:, end - width]

    chosen_s, chosen_n = trailing(_WIDENINGS[-1])
    for width in reversed(_WIDENINGS[:-1]):
        s, n = trailing(width)
        enough = n >= min_sample
        chosen_s = np.where(enough, s, chosen_s)
        chosen_n = np.where(enough, n, chosen_n)
    return chosen_s, chosen_n


def _hysteresis(
    seen: NDArray[np.int8], thresholds: HealthThresholds
) -> tuple[NDArray[np.int8], dict[int, list[tuple[int, int, int]]]]:
    """Run every entity's state machine over its hourly judgements.

    Windows without enough data neither confirm nor break a streak; after
    ``stale_after_hours`` of them in a row a known state falls back to UNKNOWN.
    Returns the state after each hour and, per entity, its (hour, from, to) changes.
    """
    entities, hours = seen.shape
    unknown = _CODE[HealthState.UNKNOWN]
    state = np.full(entities, unknown, dtype=np.int8)
    candidate = state.copy()
    streak = np.zeros(entities, dtype=np.int64)
    last_known = np.zeros(entities, dtype=np.int64)
    states = np.empty_like(seen)
    changes: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for t in range(hours):
        v = seen[:, t]
        known = v != unknown
        last_known[known] = t
        differs = known & (v != state)
        continues = differs & (v == candidate)
        streak = np.where(differs, np.where(continues, streak + 1, 1), np.where(known, 0, streak))
        candidate = np.where(differs, v, np.where(known, state, candidate))
        flips = differs & (streak >= thresholds.consecutive)
        stale = ~known & (state != unknown) & (t - last_known >= thresholds.stale_after_hours)
        for i in np.flatnonzero(flips | stale):
            to = unknown if stale[i] else int(v[i])
            changes[int(i)].append((t, int(state[i]), to))
        state = np.where(flips, v, np.where(stale, unknown, state)).astype(np.int8)
        streak[flips | stale] = 0
        states[:, t] = state
    return states, changes


def _roll_up(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per institution and aggregator: the worst known state of its products."""
    worst: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in entries:
        key = (entry["institution_id"], entry["aggregator"])
        current = worst.get(key)
        if (
            current is None
            or _SEVERITY[HealthState(entry["state"])] > _SEVERITY[HealthState(current["state"])]
        ):
            worst[key] = {
                "institution_id": key[0],
                "aggregator": key[1],
                "state": entry["state"],
                "worst_product": entry["product"],
            }
    return sorted(
        worst.values(), key=lambda e: (-_SEVERITY[HealthState(e["state"])], e["institution_id"])
    )
