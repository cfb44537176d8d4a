"""The high-volume streams of one day: sync runs and feature usage.

Sync runs. Each linked connection refreshes each synced feature it uses on a
fixed grid ``anchor + k·I`` plus a delay ``U(0, min(0.05·I, 600 s))``: I is
the institution's interval for transactions (6, 12 or 24 h; Finicity nightly
between 06:00 and 09:00 UTC) and 24 h for balances, investments and credit.
Plaid and TrueLayer runs are mostly webhook-triggered (85%), the others
scheduled; 3-5% are manual. A run fails with the aggregator's login-required
code while the connection needs a fresh login, and a connection left so for a
week is no longer refreshed; otherwise a run is ``not_ready`` (0.4%, where
the aggregator has such a state), rate-limited (0.2%), ``partial`` (1%), or
succeeds with the institution's sync success rate (the window's rate inside an
outage) and else fails at the institution (70%) or the aggregator (30%).
Durations are ``LN(ln m·M, 0.7)``, m per feature, M the window's latency
multiplier. Transactions added per successful run are Poisson with mean
``2.5·(I/1 day)·sqrt(accounts)·engagement^0.3``. Turning transactions on (in the
link flow, or later through an add_product flow) is followed by an initial pull
(30 days of transactions) and a two-year historical backfill; scheduled refreshes
start nine minutes later.

Behaviour. A user's sessions per day are Poisson with mean
``0.4·activity·engagement·w·decay`` (activity: the configuration's, 1 by default),
w = 0.8 at weekends and ``decay = exp(-max(0, t - onset)/τ)``; sessions start at
diurnal local times and hold ``1 + Poisson(2)`` events. Each event's feature is drawn among the
features the user had adopted when the session began (those computed from
transactions only once these are in), with weight
``base_f·affinity_uf`` (the first event of a feature is its first use, from which its
planted effect on upgrading applies); its action by the feature's action shares; its
duration ``LN(ln m_f, 0.9)``; 5 s-median gaps separate events. 1.5% of
interactions fail, and so does every manual refresh while the connection
needs a login. A user linked today gets an onboarding session minutes after
the link.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from numpy.typing import NDArray

from banking_analytics.simulate._arrays import F64, I64
from banking_analytics.simulate._catalog import (
    ACTION_CHOICES,
    ACTIONS,
    AGGREGATORS,
    FEATURES,
    SYNC_FEATURES,
)
from banking_analytics.simulate._emit import PROPERTIES, Batch, concat
from banking_analytics.simulate._links import (
    Counters,
    outage_effect,
    pick_errors,
    receipt_us,
    to_us,
)
from banking_analytics.simulate._state import State
from banking_analytics.simulate._world import (
    DAY,
    FROM_TRANSACTIONS,
    HOUR,
    World,
    diurnal_offsets,
)
from banking_analytics.vocabulary import (
    Aggregator,
    BankingFeature,
    EventType,
    SyncOutcome,
    SyncTrigger,
)

__all__ = ["behaviour", "initial_syncs", "sync_runs"]


_F = BankingFeature
_SYNC_OUTCOMES = tuple(SyncOutcome)
_TRIGGERS = tuple(SyncTrigger)
_TXN = FEATURES.index(_F.TRANSACTION_SYNC)
_FINICITY = AGGREGATORS.index(Aggregator.FINICITY)
_PUSHED = np.isin(
    np.arange(len(AGGREGATORS)),
    [AGGREGATORS.index(Aggregator.PLAID), AGGREGATORS.index(Aggregator.TRUELAYER)],
)
#: Median seconds of a sync run, per feature.
_SYNC_MEDIAN_S = {
    _F.TRANSACTION_SYNC: 4.0,
    _F.BALANCE_MONITORING: 1.5,
    _F.INVESTMENT_TRACKING: 6.0,
    _F.CREDIT_MONITORING: 3.0,
}

SESSIONS_PER_DAY = 0.4
#: Seconds after transactions are turned on (a minute after a link that grants them) until
#: their first pulls are in: scheduled refreshes start then, and so do the features
#: computed from them.
TRANSACTIONS_READY_AFTER = 540.0
#: Seconds after which a connection that needs a fresh login stops being synced.
ABANDONED_AFTER = 7 * DAY
#: Relative use of each feature (in FEATURES order) once adopted.
_USE_WEIGHTS = np.asarray([0.04, 0.3, 0.22, 0.14, 0.12, 0.05, 0.06, 0.07, 0.05, 0.02])
#: Median seconds an interaction with each feature takes.
_DURATION_MEDIAN_S = np.asarray([20.0, 25.0, 8.0, 35.0, 30.0, 20.0, 15.0, 25.0, 18.0, 45.0])


def _action_cdf() -> F64:
    """Per feature, the cumulative shares of its actions, padded with inf.

    The last action's bound is inf too, so counting bounds below a uniform
    draw always picks one of the feature's own actions.
    """
    widest = max(len(a) for a in ACTION_CHOICES.values())
    cdf = np.full((len(FEATURES), widest), np.inf)
    for f, feature in enumerate(FEATURES):
        shares = np.cumsum([share for _, share in ACTION_CHOICES[feature]])
        cdf[f, : shares.size - 1] = shares[:-1] / shares[-1]
    return cdf


_ACTION_CDF = _action_cdf()
#: Index in ACTIONS of each feature's first action.
_ACTION_OFFSET = np.cumsum([0] + [len(ACTION_CHOICES[f]) for f in FEATURES[:-1]])
_REFRESH = ACTIONS.index("refresh_transactions")
_APP_VERSIONS = len(PROPERTIES[EventType.BEHAVIOR])


def _has_role(world: World, role: str) -> NDArray[np.bool_]:
    """Per aggregator index: whether it reports errors of this role."""
    return np.asarray([(a, role) in world.errors.draws for a in range(len(AGGREGATORS))])


def _grid_runs(
    world: World,
    users: I64,
    feature: int,
    interval: F64,
    begin: F64,
    stop: F64,
    d0: float,
    d1: float,
) -> tuple[I64, F64]:
    """Grid points ``anchor + k·interval`` in ``[max(d0, begin), min(d1, stop))``.

    Returns each point's row in ``users`` and its time.
    """
    phase = (world.users.sync_phase[users] + 0.137 * feature) % 1.0
    nightly = (world.institutions.aggregator[world.users.institution[users]] == _FINICITY) & (
        interval == DAY
    )
    anchor = np.where(
        nightly, ((6 + 3 * phase) * HOUR - world.start_hour * HOUR) % DAY, phase * interval
    )
    k_first = np.ceil((np.maximum(d0, begin) - anchor) / interval)
    k_end = np.ceil((np.minimum(d1, stop) - anchor) / interval)
    counts = np.maximum(k_end - k_first, 0).astype(np.int64)
    rows = np.repeat(np.arange(users.size), counts)
    within = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows, anchor[rows] + (k_first[rows] + within) * interval[rows]


def sync_runs(world: World, state: State, rng: np.random.Generator, d0: float, d1: float) -> Batch:
    """Scheduled and webhook sync runs of every linked connection during ``[d0, d1)``."""
    inst = world.institutions
    stop_all = np.minimum(state.churn_at, world.horizon)
    parts: list[Batch] = []
    for feature in SYNC_FEATURES:
        f = FEATURES.index(feature)
        begin_all = state.adopted[:, f] + (TRANSACTIONS_READY_AFTER if f == _TXN else 0.0)
        users = np.flatnonzero((begin_all < d1) & (stop_all > d0))
        if not users.size:
            continue
        institution = world.users.institution[users]
        if feature is _F.TRANSACTION_SYNC:
            interval = inst.sync_interval_s[institution]
        else:
            interval = np.full(users.size, DAY)
        rows, at = _grid_runs(world, users, f, interval, begin_all[users], stop_all[users], d0, d1)
        at = at + rng.uniform(0.0, 1.0, rows.size) * np.minimum(0.05 * interval[rows], 600.0)
        user = users[rows]
        # A connection left needing a login for a week is no longer refreshed.
        dead = at - state.broken_since[user] > ABANDONED_AFTER
        keep = (at < stop_all[user]) & ~(dead & (at < state.repaired_at[user]))
        rows, at = rows[keep], at[keep]
        parts.append(_runs(world, state, rng, users[rows], f, at, interval[rows], scheduled=True))
    return concat(parts) if parts else {}


def initial_syncs(
    world: World, state: State, rng: np.random.Generator, users: I64, at: F64, feature: int
) -> Batch:
    """The first pull after a link (and, for transactions, the historical backfill)."""
    interval = (
        world.institutions.sync_interval_s[world.users.institution[users]]
        if feature == _TXN
        else np.full(users.size, DAY)
    )
    first_at = at + rng.uniform(5.0, 30.0, users.size)
    parts = [_runs(world, state, rng, users, feature, first_at, interval, scheduled=False)]
    if feature == _TXN:
        later = at + rng.uniform(120.0, 900.0, users.size)
        parts.append(
            _runs(
                world, state, rng, users, feature, later, interval, scheduled=False, backfill=True
            )
        )
    return concat(parts)


def _runs(
    world: World,
    state: State,
    rng: np.random.Generator,
    user: I64,
    feature: int,
    start: F64,
    interval: F64,
    *,
    scheduled: bool,
    backfill: bool = False,
) -> Batch:
    n = user.size
    inst = world.institutions
    institution = world.users.institution[user]
    aggregator = inst.aggregator[institution]
    feature_codes = np.full(n, feature, dtype=np.int8)
    window_rate, latency_multiplier, severity = outage_effect(
        world, institution, feature_codes, start
    )
    rate = np.where(np.isnan(window_rate), inst.sync_success[institution], window_rate)
    broken = (state.broken_since[user] <= start) & (start < state.repaired_at[user])

    v = rng.random(n)
    if scheduled:
        not_ready = ~broken & (v < 0.004) & _has_role(world, "not_ready")[aggregator]
        limited = ~broken & (v >= 0.004) & (v < 0.006)
        partial = ~broken & (v >= 0.006) & (v < 0.016)
        health = ~broken & ~not_ready & (v >= 0.016)
    else:
        # The first pulls follow a successful link seconds earlier; only the
        # two-year backfill is sometimes not ready yet.
        not_ready = backfill & (v < 0.03) & _has_role(world, "not_ready")[aggregator]
        limited = partial = health = np.zeros(n, dtype=bool)
    failed = health & (rng.random(n) >= rate)
    error = np.full(n, -1, dtype=np.int16)
    pick_errors(world, aggregator, "login_required", broken, error, rng)
    pick_errors(world, aggregator, "not_ready", not_ready, error, rng)
    pick_errors(world, aggregator, "rate_limited", limited, error, rng)
    institution_side = rng.random(n) < np.where(severity == 2, 0.8, 0.7)
    down = failed & (severity == 1)
    slow = failed & (severity == 2) & institution_side
    usual = failed & (severity == 0) & institution_side
    pick_errors(world, aggregator, "down", down, error, rng)
    pick_errors(world, aggregator, "not_responding", slow, error, rng)
    pick_errors(world, aggregator, "institution", usual, error, rng)
    pick_errors(world, aggregator, "aggregator", failed & ~down & ~institution_side, error, rng)
    outcome = np.full(n, _SYNC_OUTCOMES.index(SyncOutcome.SUCCESS), dtype=np.int8)
    outcome[broken | limited | failed] = _SYNC_OUTCOMES.index(SyncOutcome.FAILURE)
    outcome[not_ready] = _SYNC_OUTCOMES.index(SyncOutcome.NOT_READY)
    outcome[partial] = _SYNC_OUTCOMES.index(SyncOutcome.PARTIAL)

    median = _SYNC_MEDIAN_S[FEATURES[feature]] * (20.0 if backfill else 1.0)
    duration = rng.lognormal(np.log(median), 0.7, n) * latency_multiplier
    end = start + duration

    added, modified, removed = _records(world, rng, user, feature, interval, backfill, scheduled)
    delivered = (outcome == _SYNC_OUTCOMES.index(SyncOutcome.SUCCESS)) | partial
    half = np.where(partial, 2, 1)
    added = np.where(delivered, added // half, -1)
    modified = np.where(delivered, modified // half, -1)
    removed = np.where(delivered, removed // half, -1)

    if scheduled:
        pushed = _PUSHED[aggregator]
        u = rng.random(n)
        trigger = np.full(n, _TRIGGERS.index(SyncTrigger.SCHEDULED), dtype=np.int8)
        trigger[pushed & (u < 0.85)] = _TRIGGERS.index(SyncTrigger.WEBHOOK)
        trigger[u >= np.where(pushed, 0.97, 0.95)] = _TRIGGERS.index(SyncTrigger.MANUAL)
    else:
        first = SyncTrigger.HISTORICAL if backfill else SyncTrigger.INITIAL
        trigger = np.full(n, _TRIGGERS.index(first), dtype=np.int8)
    started_us = to_us(world, start)
    ended_us = to_us(world, end)
    return {
        "occurred_at": ended_us,
        "received_at": receipt_us(rng, ended_us),
        "user": user,
        "session": np.zeros(n, dtype=np.uint64),
        "properties": np.full(n, -1, dtype=np.int8),
        "institution": institution,
        "feature": feature_codes,
        "trigger": trigger,
        "started_at": started_us,
        "ended_at": ended_us,
        "outcome": outcome,
        "error": error,
        "records_added": added,
        "records_modified": modified,
        "records_removed": removed,
        "expected_interval_s": interval,
    }


def _records(
    world: World,
    rng: np.random.Generator,
    user: I64,
    feature: int,
    interval: F64,
    backfill: bool,
    scheduled: bool,
) -> tuple[I64, I64, I64]:
    n = user.size
    accounts = world.users.accounts[user].astype(np.float64)
    zero = np.zeros(n, dtype=np.int64)
    name = FEATURES[feature]
    if name is _F.TRANSACTION_SYNC:
        if not scheduled:
            days = 730.0 if backfill else 30.0
            mean = 2.5 * days * np.sqrt(accounts)
            return rng.poisson(mean), zero, zero
        mean = 2.5 * interval / DAY * np.sqrt(accounts) * world.users.engagement[user] ** 0.3
        return rng.poisson(mean), rng.poisson(0.1 * mean + 0.05), rng.poisson(0.02 * mean)
    if name is _F.BALANCE_MONITORING:
        return zero, accounts.astype(np.int64), zero
    if name is _F.INVESTMENT_TRACKING:
        return rng.poisson(0.1, n), 1 + rng.poisson(4.0, n), rng.poisson(0.05, n)
    return zero, 1 + rng.poisson(0.3, n), zero


def behaviour(
    world: World,
    state: State,
    rng: np.random.Generator,
    counters: Counters,
    d0: float,
    d1: float,
    onboarded: I64,
) -> Batch:
    """Feature-usage events of the day ``[d0, d1)``; ``onboarded`` users linked today."""
    users = world.users
    active = np.flatnonzero((state.linked_at < d1) & (state.churn_at > d0))
    midday = d0 + DAY / 2
    weekday = (world.start + timedelta(seconds=midday)).weekday()
    visits = SESSIONS_PER_DAY * world.config.activity
    rate = visits * users.engagement[active] * (0.8 if weekday >= 5 else 1.0)
    fading = np.maximum(midday - users.onset[active], 0.0)
    rate *= np.exp(-fading / (world.params.engagement_decay_days * DAY))
    counts = rng.poisson(rate)
    who = np.repeat(active, counts)
    start = d0 + diurnal_offsets(rng, users.tz_hours[who], world.start_hour)
    who = np.concatenate([who, onboarded])
    start = np.concatenate(
        [start, state.linked_at[onboarded] + rng.uniform(70.0, 300.0, onboarded.size)]
    )
    keep = (start > state.linked_at[who] + 60.0) & (start < state.churn_at[who])
    keep &= start < world.horizon
    who, start = who[keep], start[keep]
    sessions = who.size
    if not sessions:
        return {}

    alternate = (users.alt_device[who] >= 0) & (rng.random(sessions) < 0.25)
    device = np.where(alternate, users.alt_device[who], users.device[who])
    platform = np.where(alternate, users.alt_platform[who], users.platform[who])
    versioned = rng.random(sessions) < 0.2
    version = np.where(versioned, rng.integers(0, _APP_VERSIONS, sessions), -1)
    keys = counters.take("session", sessions)

    per_session = 1 + np.minimum(rng.poisson(2.0, sessions), 14)
    session = np.repeat(np.arange(sessions), per_session)
    n = session.size
    user = who[session]
    available = state.adopted[who] <= start[:, None]
    ready = state.adopted[who, _TXN] + TRANSACTIONS_READY_AFTER <= start
    available &= ~FROM_TRANSACTIONS | ready[:, None]
    weights = _USE_WEIGHTS * users.affinity[who] * available
    cdf = np.cumsum(weights, axis=1)
    draw = rng.random(n) * cdf[session, -1]
    feature = (cdf[session] <= draw[:, None]).sum(axis=1).clip(0, len(FEATURES) - 1)
    action_draw = rng.random(n)
    action = _ACTION_OFFSET[feature] + (_ACTION_CDF[feature] <= action_draw[:, None]).sum(axis=1)
    duration = np.round(rng.lognormal(np.log(_DURATION_MEDIAN_S[feature]), 0.9), 3)
    step = duration + rng.lognormal(np.log(5.0), 0.8, n)
    before = np.cumsum(step) - step
    first_of_session = np.cumsum(per_session) - per_session
    at = start[session] + before - before[first_of_session][session]

    broken = (state.broken_since[user] <= at) & (at < state.repaired_at[user])
    success = rng.random(n) < 0.985
    success &= ~((action == _REFRESH) & broken)
    keep = (at < state.churn_at[user]) & (at < world.horizon)
    np.minimum.at(state.first_used, (user[keep], feature[keep]), at[keep])
    occurred = to_us(world, at[keep])
    return {
        "occurred_at": occurred,
        "received_at": receipt_us(rng, occurred),
        "user": user[keep],
        "session": keys[session][keep],
        "properties": version[session][keep].astype(np.int8),
        "feature": feature[keep].astype(np.int8),
        "action": action[keep].astype(np.int16),
        "duration_s": duration[keep],
        "success": success[keep].astype(np.int8),
        "device": device[session][keep].astype(np.int8),
        "platform": platform[session][keep].astype(np.int8),
    }
