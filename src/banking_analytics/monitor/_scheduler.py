"""Running rules on their intervals: a scheduler driven by any clock, and a background
thread that drives it by the wall clock (inside ``serve``, or alone as ``monitor``).

A rule with interval ``I`` is evaluated at the multiples of ``I`` since the Unix
epoch (at 12:00, 12:01, ... for one minute): every process, and every restart,
asks the same questions at the same instants, so their windows line up and
rules sharing a query share its cached answer. A tick missed (the evaluator
was stopped) is not made up for: the next evaluation is at the latest tick,
as Prometheus does.

With several evaluators on one store (API replicas on PostgreSQL), each
evaluates only the rules whose lease it holds (:mod:`._lease`), and the store
records a rule's tick once whatever happens (see
:meth:`AlertStore.save_evaluation`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from banking_analytics.monitor._durations import latest_tick
from banking_analytics.monitor._evaluate import RuleEvaluation
from banking_analytics.monitor._lease import RuleLeases, lease_owner
from banking_analytics.monitor._namespace import MonitorNamespace
from banking_analytics.monitor._store import StoredRule

if TYPE_CHECKING:
    from banking_analytics.monitor._notify import Notifier

__all__ = ["BackgroundEvaluator", "Scheduler", "latest_tick"]

#: How long an evaluator's hold on a rule lasts unless renewed (it renews every cycle
#: once half of it has gone): the longest a dead evaluator's rules wait for another.
DEFAULT_LEASE = timedelta(seconds=30)
#: The lease of sending notifications: one evaluator at a time dispatches them, or each
#: replica would send every notification (not a rule's name: those start with a letter).
NOTIFIER_LEASE = "@notifications"
_log = logging.getLogger(__name__)


class Scheduler:
    """Evaluates each rule once per tick of its interval, at the tick's instant: the
    rules whose lease it holds, as ``owner`` (by default a name of its own), at ``now``."""

    def __init__(
        self,
        monitor: MonitorNamespace,
        *,
        owner: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        self._monitor = monitor
        self.leases = RuleLeases(monitor.store.engine, owner or lease_owner(), lease)
        self._held: frozenset[str] = frozenset()
        # When each rule version was last evaluated (read from the store for each rule
        # this scheduler comes to hold: another evaluator may have had it until then).
        self._last: dict[tuple[str, int], datetime] = {}

    def run_due(self, now: datetime) -> list[RuleEvaluation]:
        """Evaluate every rule it holds whose latest tick at ``now`` it has not evaluated yet."""
        rules = self._monitor.store.rules()  # rules and SLOs alike
        held = self.leases.hold((stored.name for stored in rules), now)
        if held - self._held:
            self._last.update(self._monitor.store.last_evaluations())
        self._held = held
        due: dict[datetime, list[StoredRule]] = {}
        for stored in rules:
            assert stored.rule is not None
            if stored.name not in held:
                continue
            tick = latest_tick(now, stored.rule.interval)
            last = self._last.get((stored.name, stored.version))
            if last is None or tick > last:
                due.setdefault(tick, []).append(stored)
        reports = []
        for tick in sorted(due):
            reports += self._monitor.evaluate(tick, due[tick], once_per_tick=True)
            for stored in due[tick]:
                self._last[(stored.name, stored.version)] = tick
        return reports


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class BackgroundEvaluator:
    """A daemon thread running :meth:`Scheduler.run_due` every ``period_seconds``.

    ``on_cycle`` is called with each cycle's evaluations (the ``monitor`` command
    prints them); ``notifier``'s :meth:`~Notifier.tick` after each cycle, at the cycle's
    time. A failing cycle is logged and the next one runs as usual.
    """

    def __init__(
        self,
        monitor: MonitorNamespace,
        *,
        period_seconds: float = 1.0,
        clock: Callable[[], datetime] = _wall_clock,
        on_cycle: Callable[[list[RuleEvaluation]], None] | None = None,
        notifier: Notifier | None = None,
        owner: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        if not period_seconds > 0:
            raise ValueError(f"period_seconds must be positive, got {period_seconds}")
        self._scheduler = Scheduler(monitor, owner=owner, lease=lease)
        self._period = period_seconds
        self._clock = clock
        self._on_cycle = on_cycle
        self._notifier = notifier
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="alert-evaluator", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after the cycle under way (if any), and give up its leases (another
        evaluator takes the rules over at once); returns once the thread has ended (and
        the notifier's connections are closed)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._notifier is not None:
            self._notifier.close()
        try:
            self._scheduler.leases.release()
        # The store gone (shutting down with it): the leases run out by themselves.
        except Exception:
            _log.exception("could not release the alert rules' leases")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                now = self._clock()
                reports = self._scheduler.run_due(now)
                if self._on_cycle is not None:
                    self._on_cycle(reports)
                if self._notifier is not None and self._scheduler.leases.hold(
                    [NOTIFIER_LEASE], now
                ):
                    self._notifier.tick(now)
            # One cycle failing (the store unreachable for a moment) must not end
            # monitoring: the next cycle tries again.
            except Exception:
                _log.exception("alert evaluation cycle failed")
            self._stop.wait(self._period)
