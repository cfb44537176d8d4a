"""Subscriptions: trials, conversions, plan changes, payments, cancellations.

Users who sign up inside the window start on the free tier (no events); a share of
those present at its start already pay, their subscriptions' history before the
window emitted (see ``Billing._start_paying``) so that a ledger opens with their MRR.
Per day, for a linked free user
who has used features F by the start of the day, the probability of converting
is ``1 - exp(-h0·Π_{f∈F} e_f)`` (h0 and e_f in ``Params``). A converting user
who never had a trial starts a 14-day premium trial with probability 0.7;
otherwise they subscribe directly (premium monthly 50%, premium annual 20%,
plus monthly 30%). Trials convert with probability 0.5. Plus subscribers
upgrade to premium with daily probability ``1 - exp(-h_plus·Π e_f)``; premium
monthly subscribers downgrade to plus at 0.0015 a day; paying subscribers
cancel at 0.0025 a day (0.0008 on the annual plan), with a refund of the last
payment 30% of the time when it is under a week old; former subscribers come
back (``reactivated``) at 0.004 a day.

Each period starts with a charge that fails 6% of the time: the subscription
goes ``past_due`` and is retried after 3, 5 and 7 days (each retry succeeds
with probability 0.5); after the third failed retry it is canceled.
Subscribed and upgraded events credit the used feature with the largest
effect's share, drawn with weights ``ln e_f`` (``attributed_feature``).
Coupons: 12% of new subscriptions take 20% off, 5% a flat 2 USD a month
(20 a year); 30% of reactivations take 50% off.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from banking_analytics.simulate._arrays import F64, I64
from banking_analytics.simulate._catalog import FEATURES, PLANS
from banking_analytics.simulate._emit import SOURCES, Batch, concat
from banking_analytics.simulate._links import receipt_us, to_us
from banking_analytics.simulate._state import (
    ACTIVE,
    CANCELED,
    FREE,
    PAST_DUE,
    PAYING,
    TRIALING,
    State,
)
from banking_analytics.simulate._world import DAY, HOUR, World
from banking_analytics.vocabulary import SubscriptionEventKind, SubscriptionStatus

__all__ = ["Billing"]


_K = SubscriptionEventKind
_S = SubscriptionStatus
_KINDS = tuple(SubscriptionEventKind)
_STATUSES = tuple(SubscriptionStatus)
_PLUS, _PREMIUM, _ANNUAL = 0, 1, 2
_PERIOD = np.asarray([p.period_days * DAY for p in PLANS])
_UNIT_AMOUNT = np.asarray([p.unit_amount for p in PLANS], dtype=np.int64)
#: Coupons by code (0 none): percent off, and flat minor units off per month.
_NO_COUPON, _LAUNCH20, _WINBACK50, _SAVE_FLAT = 0, 1, 2, 3
_PERCENT_OFF = np.asarray([np.nan, 20.0, 50.0, np.nan])
_FLAT_OFF = np.asarray([-1, -1, -1, 200], dtype=np.int64)
#: Properties: coupon notes (code - 1), then dunning attempts 1-3.
_DUNNING = 3

_FEATURE_SOURCES = [SOURCES.index(s) for s in ("paywall", "in_app_banner", "email")]
_OTHER_SOURCES = [SOURCES.index(s) for s in ("email", "onboarding", "organic")]

TRIAL_DAYS = 14.0
PAYMENT_FAILURE = 0.06
RETRY_SUCCESS = 0.5


class Billing:
    """Plays subscriptions forward, one day at a time."""

    def __init__(self, world: World, state: State, rng: np.random.Generator) -> None:
        self._world = world
        self._state = state
        self._rng = rng
        self._log_effects = np.log(np.asarray(world.params.upgrade_effects))
        #: The subscription events before the window of the users already paying at its start.
        self.history = self._start_paying(rng)
        self.paying_at_start = int((state.sub_state == PAYING).sum())

    def _start_paying(self, rng: np.random.Generator) -> Batch:
        """Users present at the start already pay with probability ``0.03·Π e_f`` (at most
        0.6), on a subscription started at a time uniform between their link and the
        window's start. Returns its history: the ``subscribed`` event, the first charge and
        every renewal before the window (all succeeded)."""
        world, state = self._world, self._state
        present = np.arange(world.users.present_at_start)
        lift = self._lift(present, 0.0)
        paying = present[rng.random(present.size) < np.minimum(0.03 * lift, 0.6)]
        state.trial_used[present] = rng.random(present.size) < 0.3
        state.trial_used[paying] = True
        plan = rng.choice([_PLUS, _PREMIUM, _ANNUAL], size=paying.size, p=[0.3, 0.5, 0.2])
        self._open(paying, plan.astype(np.int8), self._coupon(paying.size, 0.12, 0.05))
        state.credited[paying] = self._credit(paying, 0.0)
        since = state.linked_at[paying] * (1.0 - rng.random(paying.size))
        period = _PERIOD[plan]
        # Periods begun before the window: the next charge falls inside it, within a period.
        periods = np.ceil(-since / period)
        parts: list[Batch] = []
        self._subscribe(paying, since, parts)
        for renewal in range(1, int(periods.max(initial=1))):
            due = periods > renewal
            self._pay(paying[due], since[due] + renewal * period[due], parts)
        state.next_bill[paying] = since + periods * period
        return concat(parts)

    def use(self, rng: np.random.Generator) -> None:
        """Draw from ``rng`` from now on (each day has its own stream)."""
        self._rng = rng

    # -- helpers -------------------------------------------------------------------------

    def _lift(self, users: I64, at: float) -> F64:
        """``Π e_f`` over the features each user had used by ``at``."""
        used = self._state.first_used[users] <= at
        lift: F64 = np.exp(used.astype(np.float64) @ self._log_effects)
        return lift

    def _credit(self, users: I64, at: float) -> NDArray[np.int8]:
        """The feature credited with a conversion: used ones drawn by ``ln e_f``."""
        weights = (self._state.first_used[users] <= at) * self._log_effects
        total = weights.sum(axis=1)
        cdf = np.cumsum(weights, axis=1)
        draw = self._rng.random(users.size) * total
        chosen = (cdf <= draw[:, None]).sum(axis=1).clip(0, len(FEATURES) - 1)
        return np.where(total > 0, chosen, -1).astype(np.int8)

    def _coupon(self, n: int, percent: float, flat: float) -> NDArray[np.int8]:
        u = self._rng.random(n)
        coupon = np.full(n, _NO_COUPON, dtype=np.int8)
        coupon[u < percent] = _LAUNCH20
        coupon[(u >= percent) & (u < percent + flat)] = _SAVE_FLAT
        return coupon

    def _open(self, users: I64, plan: NDArray[np.int8], coupon: NDArray[np.int8]) -> None:
        """Start a new subscription id for each user."""
        state = self._state
        state.subscriptions[users] += 1
        state.plan[users] = plan
        state.discount[users] = coupon
        family = (plan != _PLUS) & (self._rng.random(users.size) < 0.03)
        state.quantity[users] = np.where(family, 2, 1)
        state.retries[users] = 0

    def _flat_off(self, users: I64) -> I64:
        """Minor units a flat coupon takes off per period (-1 without one)."""
        flat = _FLAT_OFF[self._state.discount[users]]
        # The flat coupon is per month: an annual period takes ten months' worth.
        annual = (flat > 0) & (self._state.plan[users] == _ANNUAL)
        off: I64 = np.where(annual, flat * 10, flat)
        return off

    def _charge(self, users: I64) -> I64:
        """Minor units charged per period after the coupon."""
        state = self._state
        gross = _UNIT_AMOUNT[state.plan[users]] * state.quantity[users]
        percent = np.nan_to_num(_PERCENT_OFF[state.discount[users]])
        net = np.round(gross * (1 - percent / 100)).astype(np.int64)
        charged: I64 = np.maximum(net - np.maximum(self._flat_off(users), 0), 0)
        return charged

    def _events(
        self,
        users: I64,
        at: F64,
        kind: SubscriptionEventKind,
        status: SubscriptionStatus,
        *,
        amount: I64 | None = None,
        credited: bool = False,
        properties: NDArray[np.int8] | None = None,
    ) -> Batch:
        """Rows of one kind, describing each subscription as it is after the event."""
        state, rng = self._state, self._rng
        n = users.size
        occurred = to_us(self._world, at)
        coupon = state.discount[users]
        credit = state.credited[users]
        if credited:
            # A conversion credited to a feature mostly comes from its paywall.
            source = np.where(
                credit >= 0,
                rng.choice(_FEATURE_SOURCES, size=n, p=[0.55, 0.3, 0.15]),
                rng.choice(_OTHER_SOURCES, size=n, p=[0.3, 0.2, 0.5]),
            )
        else:
            source = np.full(n, -1)
        return {
            "occurred_at": occurred,
            "received_at": receipt_us(rng, occurred),
            "user": users,
            "session": np.zeros(n, dtype=np.uint64),
            "properties": np.full(n, -1, dtype=np.int8) if properties is None else properties,
            "kind": np.full(n, _KINDS.index(kind), dtype=np.int8),
            "subscription": users.astype(np.uint64) * np.uint64(1024)
            + state.subscriptions[users].astype(np.uint64),
            "plan": state.plan[users].copy(),
            "quantity": state.quantity[users].astype(np.int64),
            "discount_percent": _PERCENT_OFF[coupon],
            "discount_amount": self._flat_off(users),
            "status": np.full(n, _STATUSES.index(status), dtype=np.int8),
            "amount": np.full(n, -1, dtype=np.int64) if amount is None else amount,
            "attributed_feature": credit if credited else np.full(n, -1, dtype=np.int8),
            "attribution_source": source.astype(np.int8),
            # Not a stored column: the feature credited with this subscription's money.
            "credit": credit.copy(),
        }

    def _coupon_notes(self, users: I64) -> NDArray[np.int8]:
        coupon = self._state.discount[users]
        return np.where(coupon > 0, coupon - 1, -1).astype(np.int8)

    def _pay(self, users: I64, at: F64, parts: list[Batch]) -> None:
        """A successful charge at ``at``."""
        amount = self._charge(users)
        state = self._state
        state.last_payment_at[users] = at
        state.last_payment[users] = amount
        parts.append(self._events(users, at, _K.PAYMENT_SUCCEEDED, _S.ACTIVE, amount=amount))

    def _daily(self, hazard: F64) -> NDArray[np.bool_]:
        """Whether each daily hazard fires today: probability ``1 - exp(-h)``."""
        happens: NDArray[np.bool_] = self._rng.random(hazard.shape) < -np.expm1(-hazard)
        return happens

    # -- the day ---------------------------------------------------------------------------

    def due(self, d0: float, d1: float, busy: F64) -> Batch:
        """Renewals, payment retries and trial ends falling in ``[d0, d1)``.

        ``busy`` (latest event time per user today) is raised past these events.
        """
        state, rng = self._state, self._rng
        parts: list[Batch] = []

        renew = np.flatnonzero((state.sub_state == PAYING) & (state.next_bill < d1))
        at = state.next_bill[renew]
        state.next_bill[renew] += _PERIOD[state.plan[renew]]
        fails = rng.random(renew.size) < PAYMENT_FAILURE
        self._pay(renew[~fails], at[~fails], parts)
        self._fail(renew[fails], at[fails], 1, parts)

        retry = np.flatnonzero((state.sub_state == PAST_DUE) & (state.retry_at < d1))
        at_retry = state.retry_at[retry]
        recovered = rng.random(retry.size) < RETRY_SUCCESS
        state.sub_state[retry[recovered]] = PAYING
        self._pay(retry[recovered], at_retry[recovered], parts)
        still = retry[~recovered]
        attempt = state.retries[still] + 1
        lapse = attempt > 3
        self._fail(still[~lapse], at_retry[~recovered][~lapse], attempt[~lapse], parts)
        self._cancel(still[lapse], at_retry[~recovered][lapse], parts, refund=False)

        ending = np.flatnonzero((state.sub_state == TRIALING) & (state.trial_end < d1))
        at_end = state.trial_end[ending]
        state.trial_end[ending] = np.inf
        converts = rng.random(ending.size) < 0.5
        lapsed = ending[~converts]
        parts.append(self._events(lapsed, at_end[~converts], _K.CANCELED, _S.CANCELED))
        state.sub_state[lapsed] = FREE
        paying = ending[converts]
        annual = rng.random(paying.size) < 0.2
        state.plan[paying] = np.where(annual, _ANNUAL, _PREMIUM)
        self._subscribe(paying, at_end[converts], parts)

        for batch in parts:
            np.maximum.at(busy, batch["user"], (batch["occurred_at"] - self._world.start_us) / 1e6)
        return concat(parts) if parts else {}

    def _fail(
        self, users: I64, at: F64, attempt: NDArray[np.integer[Any]] | int, parts: list[Batch]
    ) -> None:
        state = self._state
        state.sub_state[users] = PAST_DUE
        state.retries[users] = attempt
        state.retry_at[users] = at + np.where(np.asarray(attempt) == 1, 3.0, 2.0) * DAY
        notes = (
            np.full(users.size, _DUNNING, dtype=np.int8) + np.asarray(attempt, dtype=np.int8) - 1
        )
        parts.append(
            self._events(
                users, at, _K.PAYMENT_FAILED, _S.PAST_DUE, properties=notes.astype(np.int8)
            )
        )

    def _subscribe(self, users: I64, at: F64, parts: list[Batch], kind: _K = _K.SUBSCRIBED) -> None:
        """Start (or restart) a paying subscription at ``at`` and charge the first period."""
        state = self._state
        state.sub_state[users] = PAYING
        state.next_bill[users] = at + _PERIOD[state.plan[users]]
        parts.append(
            self._events(
                users,
                at,
                kind,
                _S.ACTIVE,
                credited=True,
                properties=self._coupon_notes(users),
            )
        )
        self._pay(users, at + 2.0, parts)

    def _cancel(self, users: I64, at: F64, parts: list[Batch], *, refund: bool) -> None:
        state, rng = self._state, self._rng
        parts.append(self._events(users, at, _K.CANCELED, _S.CANCELED))
        state.sub_state[users] = CANCELED
        state.next_bill[users] = np.inf
        state.retry_at[users] = np.inf
        if not refund:
            return
        recent = (at - state.last_payment_at[users] < 7 * DAY) & (rng.random(users.size) < 0.3)
        back = users[recent]
        later = at[recent] + rng.uniform(HOUR, 48 * HOUR, back.size)
        parts.append(
            self._events(back, later, _K.REFUNDED, _S.CANCELED, amount=state.last_payment[back])
        )

    def leave(self, users: I64, at: F64) -> Batch:
        """Users who churn at ``at`` cancel whatever they have."""
        state = self._state
        parts: list[Batch] = []
        trialing = state.sub_state[users] == TRIALING
        parts.append(self._events(users[trialing], at[trialing], _K.CANCELED, _S.CANCELED))
        state.sub_state[users[trialing]] = FREE
        paid = np.isin(state.sub_state[users], (PAYING, PAST_DUE))
        self._cancel(users[paid], at[paid], parts, refund=True)
        return concat(parts)

    def decide(self, d0: float, d1: float, eligible: NDArray[np.bool_]) -> Batch:
        """Conversions, plan changes, cancellations and comebacks of ``eligible`` users today."""
        world, state, rng = self._world, self._state, self._rng
        params = world.params
        parts: list[Batch] = []
        free = eligible.copy()

        def today(users: I64) -> F64:
            return d0 + rng.random(users.size) * (d1 - d0)

        candidates = np.flatnonzero(free & (state.sub_state == FREE) & (state.linked_at < d0))
        converting = candidates[self._daily(params.upgrade_hazard * self._lift(candidates, d0))]
        free[converting] = False
        at = today(converting)
        state.credited[converting] = self._credit(converting, d0)
        trial = ~state.trial_used[converting] & (rng.random(converting.size) < 0.7)
        trialists, direct = converting[trial], converting[~trial]
        self._open(
            trialists,
            np.full(trialists.size, _PREMIUM, dtype=np.int8),
            np.zeros(trialists.size, dtype=np.int8),
        )
        state.trial_used[trialists] = True
        state.sub_state[trialists] = TRIALING
        state.trial_end[trialists] = at[trial] + TRIAL_DAYS * DAY
        parts.append(
            self._events(trialists, at[trial], _K.TRIAL_STARTED, _S.TRIALING, credited=True)
        )
        plan = rng.choice([_PREMIUM, _ANNUAL, _PLUS], size=direct.size, p=[0.5, 0.2, 0.3])
        self._open(direct, plan.astype(np.int8), self._coupon(direct.size, 0.12, 0.05))
        self._subscribe(direct, at[~trial], parts)

        plus = np.flatnonzero(free & (state.sub_state == PAYING) & (state.plan == _PLUS))
        upgrading = plus[self._daily(params.plus_upgrade_hazard * self._lift(plus, d0))]
        free[upgrading] = False
        state.plan[upgrading] = _PREMIUM
        state.credited[upgrading] = self._credit(upgrading, d0)
        parts.append(
            self._events(upgrading, today(upgrading), _K.UPGRADED, _S.ACTIVE, credited=True)
        )

        monthly = np.flatnonzero(free & (state.sub_state == PAYING) & (state.plan == _PREMIUM))
        downgrading = monthly[self._daily(np.full(monthly.size, 0.0015))]
        free[downgrading] = False
        state.plan[downgrading] = _PLUS
        parts.append(self._events(downgrading, today(downgrading), _K.DOWNGRADED, _S.ACTIVE))

        paying = np.flatnonzero(free & (state.sub_state == PAYING))
        quitting = paying[self._daily(np.where(state.plan[paying] == _ANNUAL, 0.0008, 0.0025))]
        free[quitting] = False
        self._cancel(quitting, today(quitting), parts, refund=True)

        former = np.flatnonzero(free & (state.sub_state == CANCELED) & (state.status == ACTIVE))
        back = former[self._daily(np.full(former.size, 0.004))]
        state.discount[back] = np.where(rng.random(back.size) < 0.3, _WINBACK50, _NO_COUPON)
        state.credited[back] = self._credit(back, d0)
        self._subscribe(back, today(back), parts, _K.REACTIVATED)
        return concat(parts)
