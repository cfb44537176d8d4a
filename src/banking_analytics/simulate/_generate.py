"""Play the world forward one day at a time and stream its events.

Each day, in order: new users arrive; healthy connections may start needing a
fresh login; link sessions run (new links at sign-up and their retries,
re-authentications, add-product flows); renewals, payment retries and trial
ends fall due; linked users may churn; the others may convert, change plan,
cancel or come back; connections sync; users use the features.

Link retries. After a failed or abandoned new-link session the user gives up
(and churns) with probability 0.35 after a user error and 0.5 otherwise, and
always after the fourth session; otherwise they try again ``LN(ln 3 h, 1.2)``
later. A connection that needs a fresh login is repaired by 75% of users after
``LN(ln 18 h, 1)``; a failed re-authentication is retried (60%) after
``LN(ln 6 h, 1)``.

Churn. An active user linked before the day churns that day with probability
``1 - exp(-h)``, ``h = h0 · r_fail^min(k, cap) · r_eng^[disengaged] ·
r_paid^[paying]``, k the failed connection attempts in the previous 14 days
(see ``Params``); the churn time is uniform over the rest of the day after
the user's last event so far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from numpy.typing import NDArray

from banking_analytics.simulate._activity import behaviour, initial_syncs, sync_runs
from banking_analytics.simulate._arrays import F64, I64
from banking_analytics.simulate._billing import Billing
from banking_analytics.simulate._catalog import FEATURES
from banking_analytics.simulate._config import EventSink, SimulationConfig
from banking_analytics.simulate._emit import Batch, Encoder, Stream
from banking_analytics.simulate._links import Counters, LinkResult, link_sessions
from banking_analytics.simulate._metrics import daily_metrics
from banking_analytics.simulate._state import (
    ACTIVE,
    GONE,
    LINKING,
    NOT_YET,
    PAST_DUE,
    PAYING,
    PRODUCT_FEATURES,
    State,
    initial_state,
)
from banking_analytics.simulate._truth import GroundTruth, build_truth
from banking_analytics.simulate._world import DAY, HOUR, World, build_world
from banking_analytics.vocabulary import BankingFeature, ConnectionFlow, EventType

__all__ = ["run_simulation"]


_FLOWS = tuple(ConnectionFlow)
_NEW = _FLOWS.index(ConnectionFlow.NEW)
_REAUTH = _FLOWS.index(ConnectionFlow.REAUTH)
_ADD_PRODUCT = _FLOWS.index(ConnectionFlow.ADD_PRODUCT)
_LINKING = FEATURES.index(BankingFeature.ACCOUNT_LINKING)
_TXN = FEATURES.index(BankingFeature.TRANSACTION_SYNC)
#: Rounds of link sessions per day: each round runs the retries the last one scheduled.
_LINK_ROUNDS = 4


def run_simulation(
    config: SimulationConfig,
    sink: EventSink,
    progress: Callable[[int], None] | None = None,
) -> GroundTruth:
    """Generate the whole world of ``config``, writing its events to ``sink``.

    The sink receives chunks of at most ``config.chunk_events`` rows, each in the
    stored schema of its event type without ``ingest_flags``; the chunks of one
    event type arrive in ascending ``occurred_at`` order. ``progress`` is called
    with the number of events in each chunk written. Returns the ground truth.
    """
    world = build_world(config)
    days = np.random.SeedSequence([config.seed, 2]).spawn(config.days + 1)
    setup = np.random.default_rng(days[0])
    state = initial_state(world, setup)
    billing = Billing(world, state, setup)
    encoder = Encoder(world)
    streams = {t: Stream(t, encoder, sink, config.chunk_events, progress) for t in EventType}
    # The paying users' subscriptions began before the window: their history comes first.
    streams[EventType.SUBSCRIPTION].add(billing.history)
    streams[EventType.SUBSCRIPTION].release(world.start_us)
    day = _Day(world, state, billing, Counters(), streams)
    for d in range(config.days):
        day.play(d, np.random.default_rng(days[d + 1]))
    end_us = world.start_us + round(world.horizon * 1e6)
    for stream in streams.values():
        stream.close(end_us)

    churned = np.flatnonzero((state.status == GONE) & (state.churn_at < world.horizon))
    ids = world.users.ids.take(churned).to_pylist()
    dates = [(world.start + timedelta(seconds=float(t))).date() for t in state.churn_at[churned]]
    churn_dates: dict[str, date] = dict(zip(ids, dates, strict=True))
    counts = {t.value: streams[t].emitted for t in EventType}
    return build_truth(world, churn_dates, counts, billing.paying_at_start)


class _Day:
    """One simulated day; see the module docstring for the order of things."""

    def __init__(
        self,
        world: World,
        state: State,
        billing: Billing,
        counters: Counters,
        streams: dict[EventType, Stream],
    ) -> None:
        self.world = world
        self.state = state
        self.billing = billing
        self.counters = counters
        self.streams = streams

    def _add(self, event_type: EventType, batch: Batch) -> None:
        if batch:
            self.streams[event_type].add(batch)

    def play(self, d: int, rng: np.random.Generator) -> None:
        world, state = self.world, self.state
        self.billing.use(rng)
        d0 = d * DAY
        d1 = min(d0 + DAY, world.horizon)
        slot = d % state.failures.shape[1]
        state.failures[:, slot] = 0
        busy = np.full(world.users.count, -np.inf)

        arriving = (state.status == NOT_YET) & (world.users.signup < d1)
        state.status[arriving] = LINKING
        self._breaks(rng, d0)
        onboarded = self._links(rng, d1, slot, busy)

        due = self.billing.due(d0, d1, busy)
        self._add(EventType.SUBSCRIPTION, due)
        self._churn(rng, d0, d1, slot, busy)
        eligible = state.status == ACTIVE
        if due:
            eligible[due["user"]] = False
        self._add(EventType.SUBSCRIPTION, self.billing.decide(d0, d1, eligible))

        self._add(EventType.SYNC_RUN, sync_runs(world, state, rng, d0, d1))
        self._add(
            EventType.BEHAVIOR,
            behaviour(world, state, rng, self.counters, d0, d1, onboarded),
        )

        cut = world.start_us + round(d1 * 1e6)
        released: dict[EventType, Batch | None] = {
            t: self.streams[t].release(cut)
            for t in EventType
            if t is not EventType.PERFORMANCE_METRIC
        }
        for batch in daily_metrics(world, rng, d0, d1, released):
            self._add(EventType.PERFORMANCE_METRIC, batch)
        self.streams[EventType.PERFORMANCE_METRIC].release(cut)

    def _breaks(self, rng: np.random.Generator, d0: float) -> None:
        """Healthy connections that start needing a fresh login today."""
        world, state = self.world, self.state
        healthy = (state.status == ACTIVE) & (state.linked_at < d0)
        healthy &= ~((state.broken_since <= d0) & (d0 < state.repaired_at))
        users = np.flatnonzero(healthy)
        rate = world.institutions.login_required_rate[world.users.institution[users]]
        breaking = users[rng.random(users.size) < -np.expm1(-rate)]
        at = d0 + rng.random(breaking.size) * DAY
        state.broken_since[breaking] = at
        state.repaired_at[breaking] = np.inf
        repairs = rng.random(breaking.size) < 0.75
        delay = rng.lognormal(np.log(18 * HOUR), 1.0, breaking.size)
        state.reauth_at[breaking] = np.where(repairs, at + delay, np.inf)

    def _links(self, rng: np.random.Generator, d1: float, slot: int, busy: F64) -> I64:
        """Run today's link sessions, including retries they schedule for later today.

        Returns the users whose first link succeeded.
        """
        state = self.state
        onboarded = [self._link_round(rng, d1, slot, busy) for _ in range(_LINK_ROUNDS)]
        # A chain of retries longer than that resumes at the start of tomorrow.
        state.next_link[(state.status == LINKING) & (state.next_link < d1)] = d1
        state.reauth_at[(state.status == ACTIVE) & (state.reauth_at < d1)] = d1
        state.product_at[(state.status == ACTIVE)[:, None] & (state.product_at < d1)] = d1
        return np.concatenate(onboarded)

    def _link_round(self, rng: np.random.Generator, d1: float, slot: int, busy: F64) -> I64:
        """Run the link sessions due before ``d1``."""
        world, state = self.world, self.state
        new = np.flatnonzero((state.status == LINKING) & (state.next_link < d1))
        reauth = np.flatnonzero((state.status == ACTIVE) & (state.reauth_at < d1))
        product_users: list[I64] = []
        product_features: list[I64] = []
        for f in PRODUCT_FEATURES:
            due = np.flatnonzero((state.status == ACTIVE) & (state.product_at[:, f] < d1))
            at = state.product_at[due, f]
            # Adding a product needs a working connection: wait for the repair,
            # or look again tomorrow while none is in sight.
            broken = (state.broken_since[due] <= at) & (at < state.repaired_at[due])
            repaired = state.repaired_at[due[broken]]
            state.product_at[due[broken], f] = np.where(
                np.isfinite(repaired), repaired, at[broken] + DAY
            )
            product_users.append(due[~broken])
            product_features.append(np.full(int((~broken).sum()), f))
        products = np.concatenate(product_users)
        product_feature = np.concatenate(product_features)

        user = np.concatenate([new, reauth, products])
        flow = np.concatenate(
            [
                np.full(new.size, _NEW),
                np.full(reauth.size, _REAUTH),
                np.full(products.size, _ADD_PRODUCT),
            ]
        ).astype(np.int8)
        feature = np.concatenate(
            [np.full(new.size + reauth.size, _LINKING), product_feature]
        ).astype(np.int8)
        start = np.concatenate(
            [
                state.next_link[new],
                state.reauth_at[reauth],
                state.product_at[products, product_feature],
            ]
        )
        if not user.size:
            return new
        result = link_sessions(
            world,
            rng,
            self.counters,
            user,
            start,
            flow,
            feature,
            world.users.platform[user],
            world.users.device[user],
        )
        self._add(EventType.CONNECTION_ATTEMPT, result.attempts)
        self._add(EventType.BEHAVIOR, result.opens)
        # Repairing a connection or adding a product is using account linking; the first
        # link is what every linked user did, not a use of the feature.
        later = flow != _NEW
        np.minimum.at(state.first_used, (user[later], _LINKING), start[later])
        self._add(EventType.PERFORMANCE_METRIC, result.latency_reports)
        np.add.at(state.failures[:, slot], user, result.failures.astype(np.int16))
        finished = np.isfinite(result.end)
        np.maximum.at(busy, user[finished], result.end[finished])

        first, second = new.size, new.size + reauth.size
        onboarded = self._after_new(rng, new, _part(result, 0, first))
        self._after_reauth(rng, reauth, _part(result, first, second))
        self._after_product(rng, products, product_feature, _part(result, second, user.size))
        return onboarded

    def _after_new(self, rng: np.random.Generator, users: I64, result: _Outcome) -> I64:
        world, state = self.world, self.state
        linked = users[result.success]
        at = result.end[result.success]
        state.status[linked] = ACTIVE
        state.linked_at[linked] = at
        planned = at[:, None] + world.users.adopt_delay[linked]
        product = world.users.via_product[linked]
        state.adopted[linked] = np.where(product, np.inf, planned)
        state.product_at[linked] = np.where(product, planned, np.inf)
        # Transactions granted in the link flow are pulled at once.
        granted = ~product[:, _TXN]
        self._add(
            EventType.SYNC_RUN,
            initial_syncs(world, state, rng, linked[granted], at[granted], _TXN),
        )

        failed = ~result.success
        pending = ~np.isfinite(result.end)
        state.next_link[users] = np.inf
        retry_users = users[failed & ~pending]
        ended = result.end[failed & ~pending]
        state.link_sessions[retry_users] += 1
        give_up = np.where(result.user_error[failed & ~pending], 0.35, 0.5)
        quits = (rng.random(retry_users.size) < give_up) | (state.link_sessions[retry_users] >= 4)
        state.status[retry_users[quits]] = GONE
        state.churn_at[retry_users[quits]] = ended[quits]
        state.next_link[retry_users[quits]] = np.inf
        later = rng.lognormal(np.log(3 * HOUR), 1.2, retry_users.size)
        state.next_link[retry_users[~quits]] = (ended + later)[~quits]
        return linked

    def _after_reauth(self, rng: np.random.Generator, users: I64, result: _Outcome) -> None:
        state = self.state
        fixed = users[result.success]
        state.repaired_at[fixed] = result.end[result.success]
        state.reauth_at[fixed] = np.inf
        failed = ~result.success
        ended = result.end[failed]
        retry = np.isfinite(ended) & (rng.random(ended.size) < 0.6)
        later = ended + rng.lognormal(np.log(6 * HOUR), 1.0, ended.size)
        state.reauth_at[users[failed]] = np.where(retry, later, np.inf)

    def _after_product(
        self, rng: np.random.Generator, users: I64, feature: I64, result: _Outcome
    ) -> None:
        world, state = self.world, self.state
        state.product_at[users, feature] = np.inf
        added = users[result.success]
        at = result.end[result.success]
        added_feature = feature[result.success]
        state.adopted[added, added_feature] = at
        for f in PRODUCT_FEATURES:
            rows = added_feature == f
            self._add(
                EventType.SYNC_RUN, initial_syncs(world, state, rng, added[rows], at[rows], f)
            )

    def _churn(self, rng: np.random.Generator, d0: float, d1: float, slot: int, busy: F64) -> None:
        world, state = self.world, self.state
        params = world.params
        users = np.flatnonzero(
            (state.status == ACTIVE) & (state.linked_at < d0) & (busy < d1 - 120.0)
        )
        recent = state.failures[users].sum(axis=1) - state.failures[users, slot]
        hazard = params.churn_hazard * params.failure_hazard_ratio ** np.minimum(
            recent, params.failure_cap
        )
        hazard *= np.where(world.users.onset[users] <= d0, params.disengaged_hazard_ratio, 1.0)
        paying = np.isin(state.sub_state[users], (PAYING, PAST_DUE))
        hazard *= np.where(paying, params.paying_hazard_ratio, 1.0)
        leaving = users[rng.random(users.size) < -np.expm1(-hazard)]
        earliest = np.maximum(d0, busy[leaving] + 60.0)
        at = earliest + rng.random(leaving.size) * (d1 - 60.0 - earliest)
        state.status[leaving] = GONE
        state.churn_at[leaving] = at
        self._add(EventType.SUBSCRIPTION, self.billing.leave(leaving, at))


@dataclass(frozen=True, slots=True)
class _Outcome:
    """The slice of a :class:`LinkResult` belonging to one flow."""

    success: NDArray[np.bool_]
    end: F64
    user_error: NDArray[np.bool_]


def _part(result: LinkResult, first: int, last: int) -> _Outcome:
    return _Outcome(
        result.success[first:last], result.end[first:last], result.user_error[first:last]
    )
