"""The dispatcher: from firing alerts to notifications, Alertmanager's way.

:meth:`Notifier.tick` is all there is, called with the time (the background
evaluator calls it after each cycle with the wall clock; tests with their own):

1. **Alerts.** The instances firing or recovering now are the firing alerts
   (identified by a fingerprint of rule and instance labels; their severity may
   change without making a new alert). One the dispatcher knew firing and that
   is no longer is resolved now (``endsAt``).
2. **Groups.** Each alert is routed (:class:`NotificationPolicy`) to its
   receivers; in each, alerts with the same values of the route's ``group_by``
   labels form a group. A new group is flushed ``group_wait`` after it appears,
   then every ``group_interval`` after that (looks missed are not made up for).
   A flush leaves out alerts muted by an active silence or inhibited; it
   notifies when a firing alert is new since the last notification, when one
   notified firing has resolved (receivers with ``send_resolved``), or when
   ``repeat_interval`` has passed since the last notification and alerts still
   fire. A group with no alerts left is dropped.
3. **Deliveries.** Each notification is queued in the same transaction that
   marks its group notified, then sent (:class:`Sender`), retried, or dead-lettered.

Everything lives in the store (:class:`NotificationStore`): a restarted
dispatcher neither re-sends what it sent nor loses what it had to send. A crash
between a send and its record makes one duplicate at most, which the receiver
recognises by ``notificationId``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from banking_analytics.monitor._deliveries import Sender, dumps, notification_body
from banking_analytics.monitor._namespace import MonitorNamespace
from banking_analytics.monitor._notify_store import (
    AlertRecord,
    Delivery,
    Group,
    NotificationStore,
    Silence,
)
from banking_analytics.monitor._policy import NotificationPolicy, RoutedTo
from banking_analytics.monitor._state import AlertState

__all__ = ["Notifier", "fingerprint"]

_log = logging.getLogger(__name__)
_FIRING = (AlertState.FIRING, AlertState.RECOVERING)


def fingerprint(rule: str, labels: Mapping[str, str]) -> str:
    """An alert's identity: its rule and its instance's own labels (not its severity)."""
    text = json.dumps([rule, sorted(labels.items())], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _group_key(routed: RoutedTo, labels: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    shown = {name: labels.get(name, "") for name in routed.group_by}
    key = json.dumps(
        [routed.route, routed.receiver, sorted(shown.items())],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return key, shown


class Notifier:
    """Turns the monitor's alerts into notifications (see the module)."""

    def __init__(self, monitor: MonitorNamespace, sender: Sender | None = None) -> None:
        self._monitor = monitor
        self.store: NotificationStore = monitor.notifications
        self.sender = sender or Sender()

    def close(self) -> None:
        self.sender.close()

    def tick(self, now: datetime) -> list[Delivery]:
        """Update alerts and groups, flush the groups due, and try the notifications due at
        ``now``; returns what was tried (each as it stands after its try)."""
        self.dispatch(now)
        return self.deliver(now)

    # -- alerts and groups ----------------------------------------------------------------

    def _alerts(self, now: datetime, known: Sequence[AlertRecord]) -> list[AlertRecord]:
        firing: dict[str, AlertRecord] = {}
        for alert in self._monitor.alerts(states=_FIRING):
            own = {k: v for k, v in alert.labels.items() if k not in ("alertname", "severity")}
            fp = fingerprint(alert.rule, own)
            firing[fp] = AlertRecord(
                fp, alert.labels, alert.annotations, alert.fired_at or alert.active_at or now
            )
        alerts = []
        for record in known:
            current = firing.pop(record.fingerprint, None)
            if record.ends_at is None and current is not None:
                alerts.append(replace(current, starts_at=record.starts_at))
            elif record.ends_at is None:
                alerts.append(replace(record, ends_at=now))
            elif current is not None:  # resolved, and firing again: a new episode
                alerts.append(current)
            else:
                alerts.append(record)
        return alerts + list(firing.values())

    def dispatch(self, now: datetime) -> list[Delivery]:
        """Steps 1 and 2 (see the module): the notifications queued at ``now``."""
        stored = self.store.policy()
        known, groups = self.store.dispatch_state()
        alerts = self._alerts(now, known)
        if stored is None:  # nothing to notify: only keep the alerts current
            self._save(known, groups, [a for a in alerts if a.ends_at is None], [], [])
            return []
        policy = stored.policy
        members: dict[str, list[AlertRecord]] = {}
        routes: dict[str, tuple[RoutedTo, dict[str, str]]] = {}
        for alert in alerts:
            for routed in policy.route(alert.labels):
                key, shown = _group_key(routed, alert.labels)
                members.setdefault(key, []).append(alert)
                routes[key] = (routed, shown)
        by_key = {g.group_key: g for g in groups}
        silences = self.store.unexpired_silences(now)
        firing_labels = [a.labels for a in alerts if a.ends_at is None]
        kept, queued = [], []
        for key in sorted(members):
            routed, shown = routes[key]
            group = by_key.get(key) or Group(
                key,
                routed.receiver,
                now,
                now + routed.timers.group_wait,
                None,
                None,
                frozenset(),
                frozenset(),
            )
            if group.next_flush_at <= now:
                group, delivery = self._flush(
                    group, members[key], routed, shown, policy, silences, firing_labels, now
                )
                if delivery is not None:
                    queued.append(delivery)
            kept.append(group)
        # A resolved alert is forgotten once every group it is in has flushed since.
        flushed = {g.group_key: g.last_flush_at for g in kept}
        still = [
            a
            for a in alerts
            if a.ends_at is None
            or any(
                (at := flushed.get(_group_key(r, a.labels)[0])) is None or at < a.ends_at
                for r in policy.route(a.labels)
            )
        ]
        self._save(known, groups, still, kept, queued)
        return queued

    def _save(
        self,
        known: Sequence[AlertRecord],
        groups: Sequence[Group],
        alerts: Sequence[AlertRecord],
        kept: Sequence[Group],
        queued: Sequence[Delivery],
    ) -> None:
        """Store the new state, unless nothing changed (most ticks: no write at all)."""
        same = (
            not queued
            and {a.fingerprint: a for a in alerts} == {a.fingerprint: a for a in known}
            and {g.group_key: g for g in kept} == {g.group_key: g for g in groups}
        )
        if not same:
            self.store.save_dispatch(alerts, kept, queued)

    def _flush(
        self,
        group: Group,
        alerts: Sequence[AlertRecord],
        routed: RoutedTo,
        shown: Mapping[str, str],
        policy: NotificationPolicy,
        silences: Sequence[Silence],
        firing_labels: Sequence[Mapping[str, str]],
        now: datetime,
    ) -> tuple[Group, Delivery | None]:
        receiver = self.store.receiver(routed.receiver)
        send_resolved = receiver is not None and receiver.send_resolved
        firing = [
            a
            for a in alerts
            if a.ends_at is None
            and not any(s.mutes(a.labels, now) for s in silences)
            and not policy.inhibited(a.labels, firing_labels)
        ]
        resolved = [
            a for a in alerts if a.ends_at is not None and a.fingerprint in group.notified_firing
        ]
        firing_now = frozenset(a.fingerprint for a in firing)
        resolved_now = frozenset(a.fingerprint for a in resolved)
        due_again = (
            bool(firing)
            and group.last_sent_at is not None
            and now - group.last_sent_at >= routed.timers.repeat_interval
        )
        send = (
            bool(firing_now - group.notified_firing)
            or (send_resolved and bool(resolved_now - group.notified_resolved))
            or due_again
        )
        # On the group's own grid, as Alertmanager's ticker: looks missed are not made up for.
        interval = routed.timers.group_interval
        following = group.next_flush_at + interval
        if following <= now:
            following += ((now - following) // interval + 1) * interval
        flushed = replace(
            group,
            next_flush_at=following,
            last_flush_at=now,
            notified_firing=group.notified_firing - resolved_now,
        )
        if not send or receiver is None:
            return flushed, None
        delivery_id = str(uuid.uuid4())
        sent_resolved = resolved if send_resolved else []
        body = notification_body(
            receiver.kind,
            receiver=receiver.name,
            group_key=group.group_key,
            group_labels=shown,
            firing=firing,
            resolved=sent_resolved,
            notification_id=delivery_id,
        )
        delivery = Delivery(
            delivery_id,
            receiver.name,
            group.group_key,
            "firing" if firing else "resolved",
            now,
            dumps(body),
            "pending",
            0,
            now,
        )
        return (
            replace(
                flushed,
                last_sent_at=now,
                notified_firing=firing_now,
                notified_resolved=frozenset(a.fingerprint for a in sent_resolved),
            ),
            delivery,
        )

    # -- deliveries -----------------------------------------------------------------------

    def deliver(self, now: datetime) -> list[Delivery]:
        """Try every notification due at ``now`` once (step 3); returns them as they stand."""
        tried = []
        for delivery in self.store.due(now):
            attempt = self.sender.attempt(self.store.receiver(delivery.receiver), delivery, now)
            if attempt.outcome != "delivered":
                _log.warning(
                    "notification %s to %s: try %d %s: %s",
                    delivery.delivery_id,
                    delivery.receiver,
                    attempt.attempt,
                    attempt.outcome,
                    attempt.error,
                )
            tried.append(self.store.record_attempt(delivery, attempt))
        return tried
