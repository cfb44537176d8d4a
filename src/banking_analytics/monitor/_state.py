"""The alert state machine of one instance (one label set of one rule), as Prometheus and
Grafana define it.

Each evaluation at time ``now`` reads one :class:`Observation` for the instance:
``breach`` (a threshold is crossed, at a severity), ``ok``, ``nodata`` (no figure,
or one on fewer events than the minimum sample) or ``error`` (the query failed).
Then, with ``for`` = F and ``keep_firing_for`` = K:

=============  ===============================================================
state          next state
=============  ===============================================================
inactive       ok: inactive. breach/nodata/error: ``active_at = now``; then as
               pending (so with F = 0 it fires on this very evaluation).
pending        ok: inactive. breach/nodata/error: once ``now - active_at ≥ F``,
               firing (breach), nodata or error, by this evaluation's
               observation; before, pending (Grafana: pending covers all three).
firing         breach: firing. Anything else: recovering with
               ``recovering_since = now`` when K > 0; otherwise at once inactive
               (ok), nodata or error. Lack of data never resolves an alert as
               healthy.
recovering     breach: firing (``recovering_since`` cleared). Anything else:
               once ``now - recovering_since ≥ K``, inactive / nodata / error by
               the observation; before, recovering (still counted as firing).
nodata, error  ok: inactive. breach: ``active_at = now``, then as pending. The
               other of nodata/error: that state.
=============  ===============================================================

``keep_firing_for`` is counted from the first evaluation that no longer
breaches, as Prometheus does (``KeepFiringSince``). A breach's severity
(warning or critical) may change from one evaluation to the next without
resetting ``active_at`` or ``fired_at``: the instance is the same alert, its
severity is not part of its identity.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from banking_analytics.monitor._rules import Severity

__all__ = ["AlertState", "InstanceState", "Observation", "Reading", "advance"]


class AlertState(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RECOVERING = "recovering"
    NODATA = "nodata"
    ERROR = "error"


class Observation(StrEnum):
    OK = "ok"
    BREACH = "breach"
    NODATA = "nodata"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Reading:
    """What one evaluation found for one instance: the compared figure and its sample."""

    observation: Observation
    severity: Severity | None = None
    value: float | None = None
    sample_size: int | None = None


@dataclass(frozen=True, slots=True)
class InstanceState:
    """Where one instance is in its life (see the module)."""

    state: AlertState = AlertState.INACTIVE
    severity: Severity | None = None
    active_at: datetime | None = None
    fired_at: datetime | None = None
    recovering_since: datetime | None = None
    #: When ``state`` last changed (severity changes do not count).
    changed_at: datetime | None = None

    @property
    def is_firing(self) -> bool:
        """Firing or recovering: what Prometheus reports as firing."""
        return self.state in (AlertState.FIRING, AlertState.RECOVERING)


_SETTLED = {
    Observation.OK: AlertState.INACTIVE,
    Observation.BREACH: AlertState.FIRING,
    Observation.NODATA: AlertState.NODATA,
    Observation.ERROR: AlertState.ERROR,
}


def advance(
    current: InstanceState,
    reading: Reading,
    now: datetime,
    for_: timedelta,
    keep_firing_for: timedelta,
) -> InstanceState:
    """The instance's state after an evaluation at ``now`` that read ``reading``."""
    observed = reading.observation
    severity = reading.severity if observed is Observation.BREACH else None
    state = current.state
    if state in (AlertState.INACTIVE, AlertState.NODATA, AlertState.ERROR):
        if observed is Observation.OK:
            return _to(current, AlertState.INACTIVE, now)
        if _SETTLED[observed] is state:  # still no data, or still failing
            return _to(current, state, now, active_at=current.active_at)
        if observed is Observation.BREACH or state is AlertState.INACTIVE:
            return _pending_or_settled(
                replace(current, active_at=now), observed, severity, now, for_
            )
        return _to(current, _SETTLED[observed], now, active_at=now)
    if state is AlertState.PENDING:
        if observed is Observation.OK:
            return _to(current, AlertState.INACTIVE, now)
        return _pending_or_settled(current, observed, severity, now, for_)
    # Firing or recovering.
    if observed is Observation.BREACH:
        return replace(
            _to(
                current,
                AlertState.FIRING,
                now,
                active_at=current.active_at,
                fired_at=current.fired_at,
            ),
            severity=severity,
        )
    since = current.recovering_since or now
    if now - since < keep_firing_for:
        return replace(
            _to(
                current,
                AlertState.RECOVERING,
                now,
                active_at=current.active_at,
                fired_at=current.fired_at,
            ),
            severity=current.severity,
            recovering_since=since,
        )
    settled = _SETTLED[observed]
    return _to(current, settled, now, active_at=None if settled is AlertState.INACTIVE else now)


def _pending_or_settled(
    current: InstanceState,
    observed: Observation,
    severity: Severity | None,
    now: datetime,
    for_: timedelta,
) -> InstanceState:
    """Pending until ``for`` has passed since ``active_at``, then the observation's state."""
    assert current.active_at is not None
    if now - current.active_at >= for_:
        settled = _SETTLED[observed]
        fired_at = now if settled is AlertState.FIRING else None
        return replace(
            _to(current, settled, now, active_at=current.active_at, fired_at=fired_at),
            severity=severity,
        )
    return replace(
        _to(current, AlertState.PENDING, now, active_at=current.active_at), severity=severity
    )


def _to(
    current: InstanceState,
    state: AlertState,
    now: datetime,
    *,
    active_at: datetime | None = None,
    fired_at: datetime | None = None,
) -> InstanceState:
    """``state`` at ``now``; ``changed_at`` moves only when the state does."""
    changed_at = current.changed_at if state is current.state else now
    return InstanceState(state, None, active_at, fired_at, None, changed_at)
