"""What changes as the world plays forward: one array entry per user."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from banking_analytics.simulate._arrays import F64
from banking_analytics.simulate._world import PRODUCT_FEATURES, World

__all__ = ["ACTIVE", "GONE", "LINKING", "NOT_YET", "PRODUCT_FEATURES", "State", "initial_state"]


NOT_YET, LINKING, ACTIVE, GONE = 0, 1, 2, 3

# Subscription states.
FREE, TRIALING, PAYING, PAST_DUE, CANCELED = 0, 1, 2, 3, 4


@dataclass(slots=True)
class State:
    """Mutable per-user state (times are world seconds; inf means never)."""

    status: NDArray[np.int8]
    linked_at: F64
    next_link: F64
    link_sessions: NDArray[np.int8]
    broken_since: F64
    repaired_at: F64
    reauth_at: F64
    #: ``(users, features)`` time from which the user uses each feature.
    adopted: F64
    #: ``(users, features)`` time of the user's first interaction with each feature (inf
    #: before it): a feature's planted effect on upgrading applies from then, when the
    #: data shows it, not from when its use became possible.
    first_used: F64
    #: ``(users, features)`` planned time of an add_product flow (product features only).
    product_at: F64
    churn_at: F64
    #: Failed connection attempts per day, a ring over the last days.
    failures: NDArray[np.int16]
    # Subscription
    sub_state: NDArray[np.int8]
    plan: NDArray[np.int8]
    subscriptions: NDArray[np.int64]
    trial_used: NDArray[np.bool_]
    trial_end: F64
    next_bill: F64
    retry_at: F64
    retries: NDArray[np.int8]
    discount: NDArray[np.int8]
    quantity: NDArray[np.int8]
    credited: NDArray[np.int8]
    last_payment_at: F64
    last_payment: NDArray[np.int64]


def initial_state(world: World, rng: np.random.Generator) -> State:
    """Everyone not yet signed up, except the users present at the start.

    Those were linked minutes after their sign-up, have adopted what their
    adoption delays say, and a share of them already pay (see ``_billing``).
    """
    users = world.users
    n = users.count
    present = np.arange(n) < users.present_at_start
    linked_at = np.where(present, users.signup + rng.uniform(60, 1800, n), np.inf)
    planned = linked_at[:, None] + users.adopt_delay
    product = users.via_product
    # Products whose add_product flow lies in the past are simply in use.
    adopted = np.where(product & (planned >= 0), np.inf, planned)
    product_at = np.where(product & (planned >= 0), planned, np.inf)
    return State(
        status=np.where(present, ACTIVE, NOT_YET).astype(np.int8),
        linked_at=linked_at,
        next_link=np.where(present, np.inf, users.signup),
        link_sessions=np.zeros(n, dtype=np.int8),
        broken_since=np.full(n, np.inf),
        repaired_at=np.full(n, np.inf),
        reauth_at=np.full(n, np.inf),
        adopted=adopted,
        # Before the window, what was adopted was used: that history is not in the data.
        first_used=np.where(adopted < 0, adopted, np.inf),
        product_at=product_at,
        churn_at=np.full(n, np.inf),
        failures=np.zeros((n, world.params.failure_window_days + 1), dtype=np.int16),
        sub_state=np.zeros(n, dtype=np.int8),
        plan=np.zeros(n, dtype=np.int8),
        subscriptions=np.zeros(n, dtype=np.int64),
        trial_used=np.zeros(n, dtype=bool),
        trial_end=np.full(n, np.inf),
        next_bill=np.full(n, np.inf),
        retry_at=np.full(n, np.inf),
        retries=np.zeros(n, dtype=np.int8),
        discount=np.zeros(n, dtype=np.int8),
        quantity=np.ones(n, dtype=np.int8),
        credited=np.full(n, -1, dtype=np.int8),
        last_payment_at=np.full(n, -np.inf),
        last_payment=np.zeros(n, dtype=np.int64),
    )
