"""Client-reported performance metrics, computed from the day's own events.

Besides the per-attempt latency reports (see ``_links``), the app reports:

* hourly, per feature with traffic: ``connection_success_rate`` =
  successes / (successes + institution, aggregator and timeout failures) over
  link attempts and sync runs that ended in the hour, and ``error_rate`` =
  failures / all of them;
* daily, per feature: ``feature_usage`` (events) and ``user_engagement``
  (distinct users) from behaviour; ``data_sync_frequency`` (successful runs per
  synced connection) for synced features; ``conversion_rate`` (successful link
  sessions / link sessions) for account linking; ``revenue_impact`` (USD paid by
  subscribers credited to the feature).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from banking_analytics.simulate._catalog import FEATURES
from banking_analytics.simulate._emit import UNITS, Batch
from banking_analytics.simulate._links import receipt_us
from banking_analytics.simulate._world import World
from banking_analytics.vocabulary import (
    BankingFeature,
    ErrorCategory,
    EventType,
    Outcome,
    PerformanceMetric,
    SubscriptionEventKind,
    SyncOutcome,
)

__all__ = ["daily_metrics"]

_M = tuple(PerformanceMetric)
_HOUR_US = 3_600_000_000
_FEATURES = len(FEATURES)
_HEALTH_CATEGORIES = np.isin(
    np.arange(len(ErrorCategory)),
    [
        tuple(ErrorCategory).index(c)
        for c in (
            ErrorCategory.INSTITUTION,
            ErrorCategory.AGGREGATOR,
            ErrorCategory.NETWORK_TIMEOUT,
        )
    ],
)


def _rows(
    at_us: NDArray[np.int64],
    metric: PerformanceMetric,
    feature: NDArray[np.int64],
    value: NDArray[np.float64],
    unit: str,
) -> Batch:
    n = value.size
    return {
        "occurred_at": at_us,
        "user": np.full(n, -1, dtype=np.int64),
        "session": np.zeros(n, dtype=np.uint64),
        "properties": np.full(n, -1, dtype=np.int8),
        "metric_type": np.full(n, _M.index(metric), dtype=np.int8),
        "feature": feature.astype(np.int8),
        "value": value.astype(np.float64),
        "unit": np.full(n, UNITS.index(unit), dtype=np.int8),
        "institution": np.full(n, -1, dtype=np.int16),
    }


def _outcomes(
    world: World, batch: Batch | None, success: int, failure: int
) -> tuple[NDArray[np.int64], ...] | None:
    if batch is None:
        return None
    category = world.errors.category_index[np.maximum(batch["error"], 0)]
    failed = batch["outcome"] == failure
    return (
        batch["occurred_at"],
        batch["feature"].astype(np.int64),
        (batch["outcome"] == success).astype(np.int64),
        (failed & (batch["error"] >= 0) & _HEALTH_CATEGORIES[category]).astype(np.int64),
        failed.astype(np.int64),
    )


def daily_metrics(
    world: World,
    rng: np.random.Generator,
    d0: float,
    d1: float,
    released: dict[EventType, Batch | None],
) -> list[Batch]:
    """The aggregate metric events of the day ``[d0, d1)`` from the rows it released."""
    d0_us = world.start_us + round(d0 * 1e6)
    end_us = world.start_us + round(d1 * 1e6) - 1_000_000
    parts: list[Batch] = []
    tallies = [
        t
        for t in (
            _outcomes(
                world,
                released[EventType.CONNECTION_ATTEMPT],
                tuple(Outcome).index(Outcome.SUCCESS),
                tuple(Outcome).index(Outcome.FAILURE),
            ),
            _outcomes(
                world,
                released[EventType.SYNC_RUN],
                tuple(SyncOutcome).index(SyncOutcome.SUCCESS),
                tuple(SyncOutcome).index(SyncOutcome.FAILURE),
            ),
        )
        if t is not None
    ]
    if tallies:
        at, feature, success, health_failure, failure = (
            np.concatenate(column) for column in zip(*tallies, strict=True)
        )
        slot = (at - d0_us) // _HOUR_US * _FEATURES + feature
        size = 24 * _FEATURES
        good = np.bincount(slot, success, size)
        bad = np.bincount(slot, health_failure, size)
        failed = np.bincount(slot, failure, size)
        total = np.bincount(slot, minlength=size).astype(np.float64)
        hour_end = d0_us + (np.arange(size) // _FEATURES + 1) * _HOUR_US - 1_000_000
        features = np.arange(size) % _FEATURES
        rated = np.flatnonzero(good + bad > 0)
        parts.append(
            _rows(
                hour_end[rated],
                PerformanceMetric.CONNECTION_SUCCESS_RATE,
                features[rated],
                good[rated] / (good[rated] + bad[rated]),
                "ratio",
            )
        )
        seen = np.flatnonzero(total > 0)
        parts.append(
            _rows(
                hour_end[seen],
                PerformanceMetric.ERROR_RATE,
                features[seen],
                failed[seen] / total[seen],
                "ratio",
            )
        )
    parts.extend(_daily(world, end_us, released))
    for batch in parts:
        batch["received_at"] = receipt_us(rng, batch["occurred_at"])
    return parts


def _daily(world: World, end_us: int, released: dict[EventType, Batch | None]) -> list[Batch]:
    parts: list[Batch] = []
    every = np.arange(_FEATURES)

    def per_feature(metric: PerformanceMetric, values: NDArray[np.float64], unit: str) -> None:
        present = np.flatnonzero(values > 0)
        at = np.full(present.size, end_us, dtype=np.int64)
        parts.append(_rows(at, metric, every[present], values[present], unit))

    behaviour = released[EventType.BEHAVIOR]
    if behaviour is not None:
        feature = behaviour["feature"].astype(np.int64)
        per_feature(
            PerformanceMetric.FEATURE_USAGE,
            np.bincount(feature, minlength=_FEATURES).astype(np.float64),
            "count",
        )
        pairs = np.unique(behaviour["user"] * _FEATURES + feature)
        per_feature(
            PerformanceMetric.USER_ENGAGEMENT,
            np.bincount(pairs % _FEATURES, minlength=_FEATURES).astype(np.float64),
            "users",
        )
    syncs = released[EventType.SYNC_RUN]
    if syncs is not None:
        feature = syncs["feature"].astype(np.int64)
        ok = syncs["outcome"] == tuple(SyncOutcome).index(SyncOutcome.SUCCESS)
        runs = np.bincount(feature[ok], minlength=_FEATURES).astype(np.float64)
        pairs = np.unique(syncs["user"] * _FEATURES + feature)
        connections = np.bincount(pairs % _FEATURES, minlength=_FEATURES)
        per_feature(
            PerformanceMetric.DATA_SYNC_FREQUENCY,
            np.divide(runs, connections, out=np.zeros(_FEATURES), where=connections > 0),
            "syncs_per_connection",
        )
    attempts = released[EventType.CONNECTION_ATTEMPT]
    linking = FEATURES.index(BankingFeature.ACCOUNT_LINKING)
    if attempts is not None:
        sessions = attempts["link_session"][attempts["feature"] == linking]
        won = attempts["link_session"][
            (attempts["feature"] == linking)
            & (attempts["outcome"] == tuple(Outcome).index(Outcome.SUCCESS))
        ]
        if sessions.size:
            rate = np.unique(won).size / np.unique(sessions).size
            parts.append(
                _rows(
                    np.asarray([end_us]),
                    PerformanceMetric.CONVERSION_RATE,
                    np.asarray([linking]),
                    np.asarray([rate]),
                    "ratio",
                )
            )
    subscriptions = released[EventType.SUBSCRIPTION]
    if subscriptions is not None:
        paid = (
            subscriptions["kind"]
            == tuple(SubscriptionEventKind).index(SubscriptionEventKind.PAYMENT_SUCCEEDED)
        ) & (subscriptions["credit"] >= 0)
        revenue = np.bincount(
            subscriptions["credit"][paid].astype(np.int64),
            subscriptions["amount"][paid] / 100.0,
            _FEATURES,
        )
        per_feature(PerformanceMetric.REVENUE_IMPACT, np.round(revenue, 2), "USD")
    return parts
