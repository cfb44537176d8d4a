"""Institution health: HEALTHY / DEGRADED / DOWN / UNKNOWN per institution, aggregator and product.

Health is judged per *aggregator product*, as Plaid reports it: link attempts
make ``item_logins``; sync runs make the product their feature's data comes
from (``transactions_updates``, ``balance``, ...).

Every 15 minutes, health is judged on a trailing window ending then: the last
hour, or the shortest of the last 2, 3 or 6 hours that holds ``min_sample``
events of the bank-health denominator (successes + institution failures +
aggregator failures). With ``n`` such events and ``s`` successes:

* UNKNOWN when even 6 hours hold fewer than ``min_sample``;
* DOWN when ``s = 0``, or the success rate is clearly below ``down`` (0.50);
* DEGRADED when it is clearly below ``healthy`` (0.90);
* HEALTHY otherwise.

"Clearly below t" means the upper end of the rate's Wilson score interval
(``z`` = 1.96: one-sided 97.5%) is below t, so that a dip a small sample makes by chance
does not flag a healthy bank (``z = 0`` gives the plain rule ``s/n < t``).
A state changes only after ``consecutive`` judgements in a row call for it
(hysteresis), and falls back to UNKNOWN after ``stale_after`` without enough
data; ``last_state_change`` is when a change took effect.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from numpy.typing import NDArray
from sqlglot import exp

from banking_analytics.analytics._institutions import InstitutionCatalogue
from banking_analytics.events import SCHEMAS
from banking_analytics.metrics import (
    CATALOG,
    Bucket,
    DataVersions,
    Metric,
    MetricService,
    Renderer,
    Source,
    Statement,
    TimeWindow,
    aggregate,
    bucket_starts,
    parse_time_period,
    window_condition,
)
from banking_analytics.store.statements import column
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

#: How often health is judged, and the trailing windows it is judged on (in steps: 1-6 h).
STEP = timedelta(minutes=15)
_WIDENINGS = (4, 8, 12, 24)
#: Steps before the first judged one that its widest trailing window reaches back to.
WARM_UP_STEPS = max(_WIDENINGS) - 1
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
    #: How long without enough data before a known state falls back to UNKNOWN.
    stale_after: timedelta = timedelta(hours=6)

    def __post_init__(self) -> None:
        if not 0 <= self.down <= self.healthy <= 1:
            raise ValueError("thresholds need 0 ≤ down ≤ healthy ≤ 1")
        if min(self.min_sample, self.consecutive) < 1 or self.z < 0 or self.stale_after < STEP:
            raise ValueError(
                f"min_sample and consecutive must be ≥ 1, z ≥ 0 and stale_after ≥ {STEP}"
            )

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
    """Computes institution health from 15-minute counts of a statement the metric layer runs."""

    def __init__(self, metrics: MetricService, thresholds: HealthThresholds | None = None) -> None:
        self._metrics = metrics
        self._catalogue = InstitutionCatalogue(metrics)
        self.thresholds = thresholds or HealthThresholds()

    def institution_health(
        self,
        lookback: str | TimeWindow = "7d",
        *,
        now: datetime | None = None,
        include_history: bool = False,
        versions: DataVersions | None = None,
    ) -> dict[str, Any]:
        """The state of every institution x aggregator x product seen in ``lookback``.

        Each entry has the institution's id and catalogue name (``institution_name``,
        None if the catalogue has none), ``state``, ``last_state_change`` (None if the state held
        all along), the latest window's counts and ``success_rate``, and with
        ``include_history`` the state after every 15-minute step and the list of
        changes. Entries
        come worst first; ``institutions`` rolls products up to the worst state
        known per institution and aggregator.
        """
        window = parse_time_period(lookback, now)
        steps = bucket_starts(window, Bucket.QUARTER_HOUR, "UTC")
        warm_up = WARM_UP_STEPS
        entities, successes, totals = self._step_counts(
            TimeWindow(steps[0] - warm_up * STEP, window.end, "warm-up"),
            len(steps) + warm_up,
            versions,
        )
        s, n, seen, states, changes = judge_steps(successes, totals, self.thresholds)
        names = self._catalogue.names(versions)
        entries = []
        for i, (institution, aggregator, product) in enumerate(entities):
            mine = changes.get(i, [])
            latest = int(n[i, -1]) if n.size else 0
            entry: dict[str, Any] = {
                "institution_id": institution,
                "institution_name": names.get(institution),
                "aggregator": aggregator,
                "product": product.value,
                "state": _STATES[states[i, -1]].value,
                "last_state_change": _closing(steps[mine[-1][0]]) if mine else None,
                "window_sample_size": latest,
                "window_success_rate": int(s[i, -1]) / latest if latest else None,
            }
            if include_history:
                entry["history"] = [
                    {"at": _closing(at), "seen": _STATES[v].value, "state": _STATES[st].value}
                    for at, v, st in zip(steps, seen[i], states[i], strict=True)
                ]
                entry["changes"] = [
                    {"at": _closing(steps[t]), "from": _STATES[a].value, "to": _STATES[b].value}
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

    def _step_counts(
        self, window: TimeWindow, steps: int, versions: DataVersions | None
    ) -> tuple[list[_Entity], NDArray[np.int64], NDArray[np.int64]]:
        """Bank-health successes and denominators per entity (rows) and 15-minute step
        (columns, from the window's start), counted whole columns at a time.
        """
        if versions is None:
            versions = self._metrics.versions(
                SCHEMAS[et].table for et in (EventType.CONNECTION_ATTEMPT, EventType.SYNC_RUN)
            )
        start_us = int(window.start.timestamp()) * 1_000_000
        step_us = STEP // timedelta(microseconds=1)
        institutions: list[pa.ChunkedArray] = []
        aggregators: list[pa.ChunkedArray] = []
        products: list[NDArray[np.int64]] = []
        at: list[NDArray[np.int64]] = []
        good: list[NDArray[np.int64]] = []
        total: list[NDArray[np.int64]] = []
        # Sync runs first: they are the larger count, and a dashboard computes its
        # parts at once, so the longest statement should not wait behind a short one.
        for successes, denominator, by_feature in _COUNTED:
            table = self._metrics.run_statement(
                Statement(
                    _health_counts,
                    (window.start, window.end),
                    _source(CATALOG[successes]).depends_on,
                    (successes, denominator, by_feature),
                ),
                versions,
            )
            if not table.num_rows:
                continue
            institutions.append(table["institution_id"])
            aggregators.append(table["aggregator"])
            products.append(
                _product_codes(table["feature"])
                if by_feature
                else np.full(table.num_rows, _PRODUCT_CODES[Product.ITEM_LOGINS])
            )
            step = table["step"].cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
            at.append((step.to_numpy() - start_us) // step_us)
            good.append(table["successes"].to_numpy())
            total.append(table["denominator"].to_numpy())
        if not at:
            empty = np.zeros((0, steps), dtype=np.int64)
            return [], empty, empty.copy()
        # An entity is a (institution, aggregator, product) code triple; codes, not strings,
        # are what gets grouped.
        institution = _encoded(institutions)
        aggregator = _encoded(aggregators)
        # One integer per entity: the three codes in mixed radix.
        n_aggregators, n_products = len(aggregator.dictionary), len(_PRODUCT_LIST)
        space = len(institution.dictionary) * n_aggregators * n_products
        key = (
            institution.indices.to_numpy().astype(np.int64) * n_aggregators
            + aggregator.indices.to_numpy().astype(np.int64)
        ) * n_products + np.concatenate(products)
        # The codes space is small (institutions x aggregators x products): entities are
        # found by counting in it, not by sorting the rows.
        present = np.flatnonzero(np.bincount(key, minlength=space))
        institution_names = institution.dictionary.to_pylist()
        aggregator_names = aggregator.dictionary.to_pylist()
        pairs, product = np.divmod(present, n_products)
        institution_code, aggregator_code = np.divmod(pairs, n_aggregators)
        found = [
            (institution_names[i], aggregator_names[a], _PRODUCT_LIST[p])
            for i, a, p in zip(
                institution_code.tolist(), aggregator_code.tolist(), product.tolist(), strict=True
            )
        ]
        order = sorted(range(len(found)), key=found.__getitem__)
        # Each entity's row in the result: entities in name order.
        row_of = np.empty(space, dtype=np.int64)
        row_of[present[order]] = np.arange(len(order))
        cells = row_of[key] * steps + np.concatenate(at)
        shape = (len(order), steps)
        return (
            [found[i] for i in order],
            _grid(cells, np.concatenate(good), shape),
            _grid(cells, np.concatenate(total), shape),
        )


#: Per event table: the catalogue metrics counting its bank-health successes and
#: denominator, and whether its rows' product comes from their feature (sync runs) or
#: is ``item_logins`` (link attempts).
_COUNTED = (
    ("sync_successes", "sync_health_runs", True),
    ("connection_successes", "connection_health_attempts", False),
)


def _health_counts(
    renderer: Renderer, successes: str, denominator: str, by_feature: bool
) -> exp.Select:
    """The two metrics' counts in a window ``[?, ?)``, per 15-minute step (``step``, its
    start), institution, aggregator and, ``by_feature``, feature: columns ``step``,
    ``institution_id``, ``aggregator`` (``feature``), ``successes``, ``denominator``.
    """
    cut = renderer.bucket(column("occurred_at"), Bucket.QUARTER_HOUR, "UTC")
    keys = ("institution_id", "aggregator", *(("feature",) if by_feature else ()))
    counted = CATALOG[successes]
    return (
        sqlglot.select(
            cut.start.as_("step"),
            *(column(key) for key in keys),
            aggregate(counted, renderer).as_("successes"),
            aggregate(CATALOG[denominator], renderer).as_("denominator"),
        )
        .from_(_source(counted).from_clause())
        .where(window_condition())
        .group_by(cut.key, *(column(key) for key in keys))
    )


_PRODUCT_LIST = tuple(Product)
_PRODUCT_CODES = {product: code for code, product in enumerate(_PRODUCT_LIST)}
_FEATURE_PRODUCT = pa.array(
    [_PRODUCT_CODES[PRODUCTS[feature]] for feature in BankingFeature], pa.int64()
)
_FEATURE_NAMES = pa.array([feature.value for feature in BankingFeature])


def _grid(
    cells: NDArray[np.int64], counts: NDArray[np.int64], shape: tuple[int, int]
) -> NDArray[np.int64]:
    """Counts summed into a grid by flat cell index (row x columns + column)."""
    # Weighted bincount sums in floats: exact for counts below 2^53.
    summed = np.bincount(cells, weights=counts, minlength=shape[0] * shape[1])
    return summed.astype(np.int64).reshape(shape)


def _product_codes(features: pa.ChunkedArray) -> NDArray[np.int64]:
    """The product code of each row's feature."""
    feature = pc.index_in(features, value_set=_FEATURE_NAMES)
    codes: NDArray[np.int64] = pc.take(_FEATURE_PRODUCT, feature).to_numpy()
    return codes


def _encoded(parts: list[pa.ChunkedArray]) -> pa.DictionaryArray:
    """One column out of several, dictionary-encoded with one dictionary."""
    return pa.concat_arrays([c for part in parts for c in part.chunks]).dictionary_encode()


_STATES = (HealthState.UNKNOWN, HealthState.HEALTHY, HealthState.DEGRADED, HealthState.DOWN)
_CODE = {state: code for code, state in enumerate(_STATES)}


def _closing(step: datetime) -> str:
    """When a step ends: the moment what was judged in it takes effect."""
    return (step + STEP).isoformat()


def judge_steps(
    successes: NDArray[np.int64], totals: NDArray[np.int64], thresholds: HealthThresholds
) -> tuple[
    NDArray[np.int64],
    NDArray[np.int64],
    NDArray[np.int8],
    NDArray[np.int8],
    dict[int, list[tuple[int, int, int]]],
]:
    """Health of entities (rows) from counts per step (columns, ``WARM_UP_STEPS`` first).

    Returns the trailing-window counts, the judgement and the state after each judged
    step, and each entity's changes as (step, from, to) state codes.
    """
    s, n = _trailing(successes, totals, thresholds.min_sample, WARM_UP_STEPS)
    seen = thresholds.judge_all(s, n)
    states, changes = _hysteresis(seen, thresholds)
    return s, n, seen, states, changes


def _trailing(
    successes: NDArray[np.int64], totals: NDArray[np.int64], min_sample: int, warm_up: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Counts of the shortest trailing window ending with each step that holds ``min_sample``."""
    zero = np.zeros((successes.shape[0], 1), dtype=np.int64)
    cum_s = np.hstack([zero, np.cumsum(successes, axis=1)])
    cum_n = np.hstack([zero, np.cumsum(totals, axis=1)])
    first, last = warm_up + 1, successes.shape[1] + 1  # window ends, as slices (no copies)

    def trailing(width: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        before = slice(first - width, last - width)
        return (
            cum_s[:, first:last] - cum_s[:, before],
            cum_n[:, first:last] - cum_n[:, before],
        )

    chosen_s, chosen_n = trailing(_WIDENINGS[-1])
    for width in reversed(_WIDENINGS[:-1]):
        s, n = trailing(width)
        enough = n >= min_sample
        np.copyto(chosen_s, s, where=enough)
        np.copyto(chosen_n, n, where=enough)
    return chosen_s, chosen_n


def _hysteresis(
    seen: NDArray[np.int8], thresholds: HealthThresholds
) -> tuple[NDArray[np.int8], dict[int, list[tuple[int, int, int]]]]:
    """Run every entity's state machine over its judgements, one per step.

    A change needs ``consecutive`` windows in a row that all differ from the
    current state in the same direction (all worse, or all better); it goes to
    the state every one of them supports, the one nearest the current state
    (DEGRADED then DOWN confirms DEGRADED). Windows without enough data neither
    confirm nor break a streak; after ``stale_after`` of them in a row a known
    state falls back to UNKNOWN. Returns the state after each step and, per
    entity, its (step, from, to) changes.

    Judgements come in runs of one value (a bank stays healthy for days), so the
    machine advances a run at a time: where a change falls inside a run is known
    from the streak, without visiting each step.
    """
    entities, count = seen.shape
    states = np.empty_like(seen)
    changes: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    bounds = np.flatnonzero(np.diff(seen, axis=1)) if count else np.empty(0, np.int64)
    # Where each entity's runs start: column 0 and every column its value changes at.
    run_starts: list[list[int]] = [[0] for _ in range(entities)]
    for flat in bounds.tolist():
        row, column = divmod(flat, count - 1)
        run_starts[row].append(column + 1)
    for i in range(entities):
        row_states, mine = _machine(seen[i], run_starts[i], count, thresholds)
        states[i] = row_states
        if mine:
            changes[i] = mine
    return states, changes


def _machine(
    row: NDArray[np.int8], starts: list[int], count: int, thresholds: HealthThresholds
) -> tuple[NDArray[np.int8], list[tuple[int, int, int]]]:
    """One entity's states after each step, and its changes, from its runs of judgements."""
    unknown = _CODE[HealthState.UNKNOWN]
    consecutive = thresholds.consecutive
    stale_steps = thresholds.stale_after // STEP
    state = candidate = unknown
    direction = streak = last_known = 0
    changes: list[tuple[int, int, int]] = []
    out = np.empty(count, dtype=np.int8)
    held_from = 0  # the step since which ``state`` holds

    def change(at: int, to: int) -> None:
        nonlocal state, held_from, streak
        out[held_from:at] = state
        changes.append((at, state, to))
        state, held_from, streak = to, at, 0

    values = row[starts].tolist()
    for a, b, v in zip(starts, [*starts[1:], count], values, strict=True):
        if v == unknown:
            # No data: the streak waits; a known state goes stale at its time.
            at = max(a, last_known + stale_steps)
            if state != unknown and at < b:
                change(at, unknown)
            continue
        t = a
        while t < b:
            if v == state:
                streak = 0
                break
            # Codes of known states are their severity: a sign is a direction (+1 worse),
            # and 0 is any change away from UNKNOWN.
            step = 0 if state == unknown else (1 if v > state else -1)
            if streak > 0 and step == direction:
                candidate = (
                    v if step == 0 else (min(candidate, v) if step > 0 else max(candidate, v))
                )
                streak += 1
            else:
                candidate, streak = v, 1
            direction = step
            # Every further step of the run continues the streak with the same candidate.
            at = t + max(consecutive - streak, 0)
            if at >= b:
                streak += b - 1 - t
                break
            change(at, candidate)
            t = at + 1
        last_known = b - 1
    out[held_from:] = state
    return out, changes


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
                "institution_name": entry["institution_name"],
                "aggregator": key[1],
                "state": entry["state"],
                "worst_product": entry["product"],
            }
    return sorted(
        worst.values(), key=lambda e: (-_SEVERITY[HealthState(e["state"])], e["institution_id"])
    )


def _source(metric: Metric) -> Source:
    """The source a catalogue count is computed over."""
    assert metric.source is not None  # a count is not derived
    return metric.source
