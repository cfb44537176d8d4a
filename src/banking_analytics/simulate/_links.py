"""Link sessions: the user opens the aggregator's widget and tries to connect.

A session is one or two attempts sharing a ``link_session_id``. Per attempt:

* the user gives up before submitting credentials with probability 0.07 (0.10
  for OAuth redirects), after ``LN(ln 40 s, 0.8)``;
* otherwise credentials are submitted after ``LN(ln 25 s, 0.6)`` of think time,
  and the attempt ends as: abandoned during MFA (0.05), a user error (0.07;
  0.025 with OAuth), a client-side rate limit (0.004), or else an
  institution-health outcome: success with the institution's success rate
  (or the outage window's), otherwise an institution error (70%) or an
  aggregator error (30%). In a ``down`` window every health failure is the
  aggregator's "down" code; in a ``degraded`` window 80% are "not responding".
* latency from submission to the outcome is ``median·m·exp(sigma·Z)`` for health
  outcomes (m the window's latency multiplier), 0.6 of that for user errors
  and ``LN(ln 300 ms, 0.5)`` for rate limits, capped at the 120 s timeout.

After a failure the user retries within the same session with probability
0.55 (user error) or 0.35 (otherwise), ``LN(ln 6 s, 0.5)`` later. An attempt
still running when the world ends is ``pending``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from banking_analytics.simulate._arrays import F64, I64
from banking_analytics.simulate._catalog import ACTIONS, AGGREGATORS, FEATURES, OPEN_LINK
from banking_analytics.simulate._emit import NULL_TIME, PROPERTIES, Batch
from banking_analytics.simulate._world import World
from banking_analytics.vocabulary import (
    AuthMethod,
    BankingFeature,
    ErrorCategory,
    EventType,
    Outcome,
    PerformanceMetric,
)

__all__ = [
    "Counters",
    "LinkResult",
    "link_sessions",
    "outage_effect",
    "pick_errors",
    "receipt_us",
    "to_us",
]


_OUTCOMES = tuple(Outcome)
SUCCESS = _OUTCOMES.index(Outcome.SUCCESS)
FAILURE = _OUTCOMES.index(Outcome.FAILURE)
ABANDONED = _OUTCOMES.index(Outcome.ABANDONED)
PENDING = _OUTCOMES.index(Outcome.PENDING)
_OAUTH = tuple(AuthMethod).index(AuthMethod.OAUTH)
_CREDENTIALS = tuple(AuthMethod).index(AuthMethod.CREDENTIALS)
_UNKNOWN_AUTH = tuple(AuthMethod).index(AuthMethod.UNKNOWN)
_USER_ERROR = tuple(ErrorCategory).index(ErrorCategory.USER_ACTION_REQUIRED)
_LINKING = FEATURES.index(BankingFeature.ACCOUNT_LINKING)
_OPEN_LINK = ACTIONS.index(OPEN_LINK)
_LATENCY = tuple(PerformanceMetric).index(PerformanceMetric.CONNECTION_LATENCY)
#: Attempt properties: Plaid exit statuses (noted on abandons), then an MFA note.
_MFA = PROPERTIES[EventType.CONNECTION_ATTEMPT].index('{"mfa_type":"code"}')
_EXIT_STATUSES = _MFA

#: The aggregator gives up on an institution after two minutes.
TIMEOUT_MS = 120_000.0


class Counters:
    """Running counters behind the generated ids (sessions, attempts, link sessions)."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def take(self, name: str, count: int) -> NDArray[np.uint64]:
        """``count`` fresh keys for ``name``, never 0 (0 means "no id")."""
        first = self._next.get(name, 1)
        self._next[name] = first + count
        return np.arange(first, first + count, dtype=np.uint64)


def to_us(world: World, seconds: F64) -> I64:
    """Microsecond epoch times of world-relative seconds; NaN becomes NULL_TIME."""
    out = np.full(seconds.size, NULL_TIME, dtype=np.int64)
    present = np.isfinite(seconds)
    out[present] = world.start_us + np.round(seconds[present] * 1e6).astype(np.int64)
    return out


def receipt_us(rng: np.random.Generator, occurred_us: I64) -> I64:
    """Server receipt: 0.05-3 s after the event, ``LN(ln 0.3 s, 0.8)``."""
    delay = np.clip(rng.lognormal(np.log(0.3), 0.8, occurred_us.size), 0.05, 3.0)
    return occurred_us + np.round(delay * 1e6).astype(np.int64)


def outage_effect(
    world: World, institution: NDArray[np.int16], feature: NDArray[np.int8], at: F64
) -> tuple[F64, F64, NDArray[np.int8]]:
    """Success rate, latency multiplier and severity (0 none, 1 down, 2 degraded) at ``at``.

    The rate is NaN outside every window, so callers keep their normal rate.
    """
    rate = np.full(at.size, np.nan)
    latency = np.ones(at.size)
    severity = np.zeros(at.size, dtype=np.int8)
    for outage in world.outages:
        hit = (institution == outage.institution) & (at >= outage.start) & (at < outage.end)
        if outage.feature >= 0:
            hit &= feature == outage.feature
        rate[hit] = outage.success_rate
        latency[hit] = outage.latency_multiplier
        severity[hit] = 1 if outage.severity == "down" else 2
    return rate, latency, severity


def pick_errors(
    world: World,
    aggregator: NDArray[np.int8],
    role: str,
    rows: NDArray[np.bool_],
    out: NDArray[np.int16],
    rng: np.random.Generator,
) -> None:
    """Write into ``out[rows]`` an error of ``role`` drawn from each row's aggregator.

    An aggregator without a code for the role reports one of its own errors.
    """
    if not rows.any():
        return
    u = rng.random(out.size)
    present = np.bincount(aggregator[rows], minlength=len(AGGREGATORS))
    for a in np.flatnonzero(present).tolist():
        where = rows & (aggregator == a)
        codes, cdf = world.errors.draws.get((a, role)) or world.errors.draws[(a, "aggregator")]
        out[where] = codes[np.searchsorted(cdf, u[where], side="right").clip(0, codes.size - 1)]


@dataclass(frozen=True, slots=True)
class _Attempts:
    cred: F64
    end: F64
    outcome: NDArray[np.int8]
    error: NDArray[np.int16]


def _attempt(
    world: World,
    rng: np.random.Generator,
    start: F64,
    institution: NDArray[np.int16],
    feature: NDArray[np.int8],
    oauth: NDArray[np.bool_],
) -> _Attempts:
    n = start.size
    inst = world.institutions
    aggregator = inst.aggregator[institution]
    early_exit = rng.random(n) < np.where(oauth, 0.10, 0.07)
    cred = np.where(early_exit, np.nan, start + rng.lognormal(np.log(25.0), 0.6, n))
    window_rate, latency_multiplier, severity = outage_effect(world, institution, feature, cred)
    rate = np.where(np.isnan(window_rate), inst.success[institution], window_rate)

    v = rng.random(n)
    late_exit = ~early_exit & (v < 0.05)
    user_share = np.where(oauth, 0.025, 0.07)
    user_error = ~early_exit & ~late_exit & (v < 0.05 + user_share)
    client_error = ~early_exit & ~late_exit & ~user_error & (v < 0.054 + user_share)
    health = ~early_exit & ~late_exit & ~user_error & ~client_error
    success = health & (rng.random(n) < rate)
    health_failure = health & ~success

    median = inst.latency_median_ms[institution]
    spread = inst.latency_sigma[institution] * rng.standard_normal(n)
    latency_ms = median * latency_multiplier * np.exp(spread)
    latency_ms = np.where(user_error, 0.6 * median * np.exp(spread), latency_ms)
    latency_ms = np.where(client_error, rng.lognormal(np.log(300.0), 0.5, n), latency_ms)
    latency_ms = np.minimum(latency_ms, TIMEOUT_MS)
    end = cred + latency_ms / 1000.0
    end = np.where(late_exit, cred + rng.lognormal(np.log(45.0), 0.8, n), end)
    end = np.where(early_exit, start + rng.lognormal(np.log(40.0), 0.8, n), end)

    outcome = np.full(n, FAILURE, dtype=np.int8)
    outcome[success] = SUCCESS
    outcome[early_exit | late_exit] = ABANDONED
    error = np.full(n, -1, dtype=np.int16)
    pick_errors(world, aggregator, "user", user_error, error, rng)
    pick_errors(world, aggregator, "rate_limited", client_error, error, rng)
    institution_side = rng.random(n) < np.where(severity == 2, 0.8, 0.7)
    down = health_failure & (severity == 1)
    pick_errors(world, aggregator, "down", down, error, rng)
    slow = health_failure & (severity == 2) & institution_side
    pick_errors(world, aggregator, "not_responding", slow, error, rng)
    normal = health_failure & (severity == 0) & institution_side
    pick_errors(world, aggregator, "institution", normal, error, rng)
    pick_errors(
        world, aggregator, "aggregator", health_failure & ~down & ~institution_side, error, rng
    )

    pending = end >= world.horizon
    outcome[pending] = PENDING
    error[pending] = -1
    end[pending] = np.nan
    return _Attempts(cred=cred, end=end, outcome=outcome, error=error)


@dataclass(frozen=True, slots=True)
class LinkResult:
    """Per session: how it ended, and the events it produced."""

    success: NDArray[np.bool_]
    #: When the session ended (NaN while pending).
    end: F64
    #: Failed attempts in the session.
    failures: NDArray[np.int64]
    #: Whether the last attempt failed because of the user.
    user_error: NDArray[np.bool_]
    attempts: Batch
    opens: Batch
    latency_reports: Batch


def link_sessions(
    world: World,
    rng: np.random.Generator,
    counters: Counters,
    user: I64,
    start: F64,
    flow: NDArray[np.int8],
    feature: NDArray[np.int8],
    platform: NDArray[np.int8],
    device: NDArray[np.int8],
) -> LinkResult:
    """Simulate link sessions starting at ``start`` (one per row)."""
    n = user.size
    institution = world.users.institution[user]
    oauth = world.institutions.oauth[institution]
    app_session = counters.take("session", n)
    link_session = counters.take("link_session", n)

    first = _attempt(world, rng, start, institution, feature, oauth)
    first_user_error = (first.outcome == FAILURE) & (
        world.errors.category_index[np.maximum(first.error, 0)] == _USER_ERROR
    )
    retry = (first.outcome == FAILURE) & (rng.random(n) < np.where(first_user_error, 0.55, 0.35))
    again = np.flatnonzero(retry)
    retry_start = first.end[again] + rng.lognormal(np.log(6.0), 0.5, again.size)
    second = _attempt(world, rng, retry_start, institution[again], feature[again], oauth[again])

    rows = np.concatenate([np.arange(n), again])
    starts = np.concatenate([start, retry_start])
    cred = np.concatenate([first.cred, second.cred])
    end = np.concatenate([first.end, second.end])
    outcome = np.concatenate([first.outcome, second.outcome])
    error = np.concatenate([first.error, second.error])

    final_outcome = first.outcome.copy()
    final_outcome[again] = second.outcome
    final_end = first.end.copy()
    final_end[again] = second.end
    final_error = first.error.copy()
    final_error[again] = second.error
    failures = (first.outcome == FAILURE).astype(np.int64)
    failures[again] += second.outcome == FAILURE

    started_us = to_us(world, starts)
    cred_us = to_us(world, cred)
    ended_us = to_us(world, end)
    has_latency = (cred_us != NULL_TIME) & (ended_us != NULL_TIME)
    latency_ms = np.where(has_latency, (ended_us - cred_us) / 1000.0, np.nan)
    occurred = np.where(ended_us != NULL_TIME, ended_us, started_us)
    auth = np.where(oauth[rows], _OAUTH, _CREDENTIALS).astype(np.int8)
    auth[rng.random(rows.size) < 0.02] = _UNKNOWN_AUTH
    properties = np.full(rows.size, -1, dtype=np.int8)
    exits = (outcome == ABANDONED) & (rng.random(rows.size) < 0.6)
    properties[exits] = rng.integers(0, _EXIT_STATUSES, int(exits.sum()))
    mfa = (outcome == SUCCESS) & (rng.random(rows.size) < 0.15)
    properties[mfa] = _MFA
    attempts: Batch = {
        "occurred_at": occurred,
        "received_at": receipt_us(rng, occurred),
        "user": user[rows],
        "session": app_session[rows],
        "properties": properties,
        "attempt": counters.take("attempt", rows.size),
        "link_session": link_session[rows],
        "institution": institution[rows],
        "feature": feature[rows],
        "flow": flow[rows],
        "auth_method": auth,
        "started_at": started_us,
        "credentials_submitted_at": cred_us,
        "ended_at": ended_us,
        "outcome": outcome,
        "error": error,
        "latency_ms": latency_ms,
        "platform": platform[rows],
    }

    session_success = final_outcome == SUCCESS
    session_pending = final_outcome == PENDING
    opened_us = to_us(world, start)
    opens: Batch = {
        "occurred_at": opened_us,
        "received_at": receipt_us(rng, opened_us),
        "user": user,
        "session": app_session,
        "properties": np.full(n, -1, dtype=np.int8),
        "feature": np.full(n, _LINKING, dtype=np.int8),
        "action": np.full(n, _OPEN_LINK, dtype=np.int16),
        "duration_s": np.where(session_pending, np.nan, np.round(final_end - start, 3)),
        "success": np.where(session_pending, -1, session_success).astype(np.int8),
        "device": device,
        "platform": platform,
    }

    # The client reports the latency of about half of the completed attempts.
    reported = np.flatnonzero(has_latency & (rng.random(rows.size) < 0.5))
    reports: Batch = {
        "occurred_at": occurred[reported],
        "received_at": receipt_us(rng, occurred[reported]),
        "user": user[rows][reported],
        "session": app_session[rows][reported],
        "properties": np.full(reported.size, -1, dtype=np.int8),
        "metric_type": np.full(reported.size, _LATENCY, dtype=np.int8),
        "feature": feature[rows][reported],
        "value": latency_ms[reported],
        "unit": np.full(reported.size, 1, dtype=np.int8),
        "institution": institution[rows][reported],
    }
    final_user_error = (final_outcome == FAILURE) & (
        world.errors.category_index[np.maximum(final_error, 0)] == _USER_ERROR
    )
    return LinkResult(
        success=session_success,
        end=final_end,
        failures=failures,
        user_error=final_user_error,
        attempts=attempts,
        opens=opens,
        latency_reports=reports,
    )
