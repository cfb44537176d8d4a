"""Where notifications' configuration and state live: tables of the store beside the
monitor's, so a restart neither sends a notification twice nor loses one.

* ``notify_receivers`` — where notifications go (a webhook's signing secret too).
* ``notify_policy_versions`` — every version of the routing policy (the highest rules).
* ``notify_silences`` — silences, never deleted: expiring one records who and when.
* ``notify_alerts`` — the alerts the dispatcher knows: firing, or resolved and not yet
  notified as such.
* ``notify_groups`` — each aggregation group: its next flush, what it last notified.
* ``notify_deliveries`` / ``notify_attempts`` — each notification to send (its body as
  first rendered), its state (pending, delivered, dead: the dead letter), and every
  attempt with its status code or error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlglot import exp

from banking_analytics.events import Kind
from banking_analytics.monitor._matchers import Matcher
from banking_analytics.monitor._policy import NotificationPolicy
from banking_analytics.monitor._store import _arrow
from banking_analytics.store import Column, Engine, TableDef
from banking_analytics.store.statements import column, insert_row, select_all, table, update

__all__ = [
    "NOTIFY_TABLES",
    "AlertRecord",
    "Attempt",
    "Delivery",
    "Group",
    "NotificationStore",
    "Receiver",
    "Silence",
    "StoredPolicy",
]

T = Kind.TEXT
NOTIFY_RECEIVERS = TableDef(
    "notify_receivers",
    (
        Column("name", T, nullable=False),
        Column("kind", T, nullable=False),
        Column("url", T, nullable=False),
        Column("secret", T),
        Column("send_resolved", Kind.BOOLEAN, nullable=False),
        Column("changed_at", Kind.TIMESTAMP, nullable=False),
        Column("changed_by", T, nullable=False),
    ),
    lookup_columns=("name",),
)
NOTIFY_POLICY_VERSIONS = TableDef(
    "notify_policy_versions",
    (
        Column("version", Kind.INTEGER, nullable=False),
        Column("changed_at", Kind.TIMESTAMP, nullable=False),
        Column("changed_by", T, nullable=False),
        Column("definition", T, nullable=False),
    ),
)
NOTIFY_SILENCES = TableDef(
    "notify_silences",
    (
        Column("silence_id", T, nullable=False),
        Column("matchers", T, nullable=False),
        Column("starts_at", Kind.TIMESTAMP, nullable=False),
        Column("ends_at", Kind.TIMESTAMP, nullable=False),
        Column("created_at", Kind.TIMESTAMP, nullable=False),
        Column("created_by", T, nullable=False),
        Column("comment", T, nullable=False),
        Column("expired_at", Kind.TIMESTAMP),
        Column("expired_by", T),
    ),
    lookup_columns=("silence_id",),
)
NOTIFY_ALERTS = TableDef(
    "notify_alerts",
    (
        Column("fingerprint", T, nullable=False),
        Column("labels", T, nullable=False),
        Column("annotations", T, nullable=False),
        Column("starts_at", Kind.TIMESTAMP, nullable=False),
        Column("ends_at", Kind.TIMESTAMP),
    ),
)
NOTIFY_GROUPS = TableDef(
    "notify_groups",
    (
        Column("group_key", T, nullable=False),
        Column("receiver", T, nullable=False),
        Column("created_at", Kind.TIMESTAMP, nullable=False),
        Column("next_flush_at", Kind.TIMESTAMP, nullable=False),
        Column("last_flush_at", Kind.TIMESTAMP),
        Column("last_sent_at", Kind.TIMESTAMP),
        Column("notified_firing", T, nullable=False),
        Column("notified_resolved", T, nullable=False),
    ),
)
NOTIFY_DELIVERIES = TableDef(
    "notify_deliveries",
    (
        Column("delivery_id", T, nullable=False),
        Column("receiver", T, nullable=False),
        Column("group_key", T, nullable=False),
        Column("status", T, nullable=False),
        Column("created_at", Kind.TIMESTAMP, nullable=False),
        Column("payload", T, nullable=False),
        Column("state", T, nullable=False),
        Column("attempts", Kind.INTEGER, nullable=False),
        Column("next_try_at", Kind.TIMESTAMP),
        Column("status_code", Kind.INTEGER),
        Column("error", T),
    ),
    lookup_columns=("delivery_id", "state"),
)
NOTIFY_ATTEMPTS = TableDef(
    "notify_attempts",
    (
        Column("delivery_id", T, nullable=False),
        Column("attempt", Kind.INTEGER, nullable=False),
        Column("attempted_at", Kind.TIMESTAMP, nullable=False),
        Column("outcome", T, nullable=False),
        Column("status_code", Kind.INTEGER),
        Column("error", T),
        Column("next_try_at", Kind.TIMESTAMP),
    ),
    lookup_columns=("delivery_id",),
)
NOTIFY_TABLES = (
    NOTIFY_RECEIVERS,
    NOTIFY_POLICY_VERSIONS,
    NOTIFY_SILENCES,
    NOTIFY_ALERTS,
    NOTIFY_GROUPS,
    NOTIFY_DELIVERIES,
    NOTIFY_ATTEMPTS,
)


@dataclass(frozen=True, slots=True)
class Receiver:
    name: str
    #: ``webhook`` (signed JSON) or ``slack`` (an incoming webhook's JSON).
    kind: str
    url: str
    #: A webhook's signing secret; None for Slack (its URL is the secret).
    secret: str | None
    send_resolved: bool
    changed_at: datetime
    changed_by: str


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    policy: NotificationPolicy
    version: int
    changed_at: datetime
    changed_by: str


@dataclass(frozen=True, slots=True)
class Silence:
    silence_id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    created_by: str
    comment: str
    expired_at: datetime | None = None
    expired_by: str | None = None

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def mutes(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.active(now) and all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert as the dispatcher knows it (``ends_at`` set once resolved)."""

    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Group:
    group_key: str
    receiver: str
    created_at: datetime
    next_flush_at: datetime
    last_flush_at: datetime | None
    last_sent_at: datetime | None
    notified_firing: frozenset[str]
    notified_resolved: frozenset[str]


@dataclass(frozen=True, slots=True)
class Delivery:
    delivery_id: str
    receiver: str
    group_key: str
    #: firing or resolved: the notification's status.
    status: str
    created_at: datetime
    payload: str
    #: pending, delivered, or dead (the last try failed, or one that cannot succeed).
    state: str
    attempts: int
    next_try_at: datetime | None
    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    delivery_id: str
    attempt: int
    attempted_at: datetime
    #: delivered, retry (another try at ``next_try_at``) or dead.
    outcome: str
    status_code: int | None
    error: str | None
    next_try_at: datetime | None


def _is(name: str) -> exp.Expr:
    return column(name).eq(exp.Placeholder())


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _newest(name: str) -> exp.Ordered:
    return exp.Ordered(this=column(name), desc=True, nulls_first=False)


class NotificationStore:
    """Receivers, the policy, silences and the dispatcher's state in a store (see the module)."""

    def __init__(self, engine: Engine) -> None:
        engine.migrate(NOTIFY_TABLES)
        self._engine = engine
        d = engine.dialect
        receivers = select_all(NOTIFY_RECEIVERS).order_by(column("name"))
        self._sql = {
            "receivers": receivers.offset(exp.Placeholder()).sql(d),
            "receivers_page": receivers.limit(exp.Placeholder()).offset(exp.Placeholder()).sql(d),
            "receiver": select_all(NOTIFY_RECEIVERS).where(_is("name")).sql(d),
            "delete_receiver": exp.delete(table(NOTIFY_RECEIVERS), where=_is("name")).sql(d),
            "insert_receiver": insert_row(NOTIFY_RECEIVERS).sql(d),
            "policy": select_all(NOTIFY_POLICY_VERSIONS)
            .order_by(_newest("version"))
            .limit(1)
            .sql(d),
            "insert_policy": insert_row(NOTIFY_POLICY_VERSIONS).sql(d),
            "silence": select_all(NOTIFY_SILENCES).where(_is("silence_id")).sql(d),
            "insert_silence": insert_row(NOTIFY_SILENCES).sql(d),
            "expire_silence": update(
                NOTIFY_SILENCES,
                {n: exp.Placeholder() for n in ("ends_at", "expired_at", "expired_by")},
                _is("silence_id"),
            ).sql(d),
            "silences": select_all(NOTIFY_SILENCES)
            .where(column("ends_at") > exp.Placeholder())
            .order_by(column("starts_at"), column("silence_id"))
            .limit(exp.Placeholder())
            .sql(d),
            "unexpired": select_all(NOTIFY_SILENCES)
            .where(column("ends_at") > exp.Placeholder())
            .sql(d),
            "alerts": select_all(NOTIFY_ALERTS).order_by(column("fingerprint")).sql(d),
            "groups": select_all(NOTIFY_GROUPS).order_by(column("group_key")).sql(d),
            "insert_delivery": insert_row(NOTIFY_DELIVERIES).sql(d),
            "due": select_all(NOTIFY_DELIVERIES)
            .where(_is("state"))
            .where(column("next_try_at") <= exp.Placeholder())
            .order_by(column("created_at"), column("delivery_id"))
            .sql(d),
            "delivery": select_all(NOTIFY_DELIVERIES).where(_is("delivery_id")).sql(d),
            "update_delivery": update(
                NOTIFY_DELIVERIES,
                {
                    n: exp.Placeholder()
                    for n in ("state", "attempts", "next_try_at", "status_code", "error")
                },
                _is("delivery_id"),
            ).sql(d),
            "insert_attempt": insert_row(NOTIFY_ATTEMPTS).sql(d),
            "attempts": select_all(NOTIFY_ATTEMPTS)
            .where(_is("delivery_id"))
            .order_by(column("attempt"))
            .sql(d),
        }

    def _rows(self, name: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._engine.query(self._sql[name], params).to_pylist()
        return rows

    # -- receivers ------------------------------------------------------------------------

    def receivers(self, *, limit: int | None = None, offset: int = 0) -> list[Receiver]:
        """Receivers by name: from ``offset``, the first ``limit`` (every one by default)."""
        if limit is None:
            rows = self._rows("receivers", [offset])
        else:
            rows = self._rows("receivers_page", [limit, offset])
        return [Receiver(**row) for row in rows]

    def receiver(self, name: str) -> Receiver | None:
        rows = self._rows("receiver", [name])
        return Receiver(**rows[0]) if rows else None

    def put_receiver(self, receiver: Receiver) -> None:
        with self._engine.begin() as tx:
            tx.execute(self._sql["delete_receiver"], [receiver.name])
            tx.execute(
                self._sql["insert_receiver"],
                [getattr(receiver, n) for n in NOTIFY_RECEIVERS.column_names],
            )

    def delete_receiver(self, name: str) -> bool:
        with self._engine.begin() as tx:
            tx.lock(NOTIFY_RECEIVERS)
            found: bool = tx.execute(self._sql["receiver"], [name]).num_rows > 0
            tx.execute(self._sql["delete_receiver"], [name])
        return found

    # -- the policy -----------------------------------------------------------------------

    def policy(self) -> StoredPolicy | None:
        """The current policy (None: none was ever set, and nothing is notified)."""
        rows = self._rows("policy")
        if not rows:
            return None
        row = rows[0]
        return StoredPolicy(
            NotificationPolicy.from_dict(json.loads(row["definition"])),
            row["version"],
            row["changed_at"],
            row["changed_by"],
        )

    def put_policy(
        self, policy: NotificationPolicy, changed_by: str, now: datetime
    ) -> StoredPolicy:
        with self._engine.begin() as tx:
            tx.lock(NOTIFY_POLICY_VERSIONS)
            rows = tx.execute(self._sql["policy"]).to_pylist()
            version = (rows[0]["version"] if rows else 0) + 1
            tx.execute(
                self._sql["insert_policy"], [version, now, changed_by, _json(policy.as_dict())]
            )
        return StoredPolicy(policy, version, now, changed_by)

    # -- silences -------------------------------------------------------------------------

    def add_silence(self, silence: Silence) -> None:
        row = [getattr(silence, n) for n in NOTIFY_SILENCES.column_names]
        row[1] = _json([str(m) for m in silence.matchers])
        with self._engine.begin() as tx:
            tx.execute(self._sql["insert_silence"], row)

    def silence(self, silence_id: str) -> Silence | None:
        rows = self._rows("silence", [silence_id])
        return _silence(rows[0]) if rows else None

    def silences(self, *, since: datetime, limit: int) -> list[Silence]:
        """Silences ending after ``since`` (active or to come), by start; the first ``limit``."""
        return [_silence(row) for row in self._rows("silences", [since, limit])]

    def unexpired_silences(self, now: datetime) -> list[Silence]:
        """Every silence not over at ``now`` (what the dispatcher checks alerts against)."""
        return [_silence(row) for row in self._rows("unexpired", [now])]

    def expire_silence(self, silence_id: str, expired_by: str, now: datetime) -> Silence | None:
        """End a silence now (one already over is left as it was); None if there is none."""
        with self._engine.begin() as tx:
            tx.lock(NOTIFY_SILENCES)
            rows = tx.execute(self._sql["silence"], [silence_id]).to_pylist()
            if not rows:
                return None
            found = _silence(rows[0])
            if found.ends_at <= now:
                return found
            tx.execute(self._sql["expire_silence"], [now, now, expired_by, silence_id])
        return Silence(
            **{**_fields(found), "ends_at": now, "expired_at": now, "expired_by": expired_by}
        )

    # -- the dispatcher's state -----------------------------------------------------------

    def dispatch_state(self) -> tuple[list[AlertRecord], list[Group]]:
        alerts = [
            AlertRecord(
                row["fingerprint"],
                json.loads(row["labels"]),
                json.loads(row["annotations"]),
                row["starts_at"],
                row["ends_at"],
            )
            for row in self._rows("alerts")
        ]
        groups = [
            Group(
                **{
                    **row,
                    "notified_firing": frozenset(json.loads(row["notified_firing"])),
                    "notified_resolved": frozenset(json.loads(row["notified_resolved"])),
                }
            )
            for row in self._rows("groups")
        ]
        return alerts, groups

    def save_dispatch(
        self, alerts: Sequence[AlertRecord], groups: Sequence[Group], new: Sequence[Delivery]
    ) -> None:
        """Replace the alerts and groups, and add the notifications their flushes made, in one
        transaction: a group is marked notified exactly when its notification is queued."""
        with self._engine.begin() as tx:
            tx.lock(NOTIFY_GROUPS)
            for definition in (NOTIFY_ALERTS, NOTIFY_GROUPS):
                tx.execute(exp.delete(table(definition)).sql(self._engine.dialect))
            tx.append(
                NOTIFY_ALERTS,
                _arrow(
                    NOTIFY_ALERTS,
                    [
                        {
                            **_fields(a),
                            "labels": _json(a.labels),
                            "annotations": _json(a.annotations),
                        }
                        for a in alerts
                    ],
                ),
            )
            tx.append(
                NOTIFY_GROUPS,
                _arrow(
                    NOTIFY_GROUPS,
                    [
                        {
                            **_fields(g),
                            "notified_firing": _json(sorted(g.notified_firing)),
                            "notified_resolved": _json(sorted(g.notified_resolved)),
                        }
                        for g in groups
                    ],
                ),
            )
            tx.append(NOTIFY_DELIVERIES, _arrow(NOTIFY_DELIVERIES, [_fields(n) for n in new]))

    # -- deliveries -----------------------------------------------------------------------

    def due(self, now: datetime) -> list[Delivery]:
        """Pending notifications whose next try is at or before ``now``, oldest first."""
        return [Delivery(**row) for row in self._rows("due", ["pending", now])]

    def record_attempt(self, delivery: Delivery, attempt: Attempt) -> Delivery:
        state = "pending" if attempt.outcome == "retry" else attempt.outcome
        after = Delivery(
            **{
                **_fields(delivery),
                "state": state,
                "attempts": attempt.attempt,
                "next_try_at": attempt.next_try_at,
                "status_code": attempt.status_code,
                "error": attempt.error,
            }
        )
        with self._engine.begin() as tx:
            tx.execute(
                self._sql["insert_attempt"],
                [getattr(attempt, n) for n in NOTIFY_ATTEMPTS.column_names],
            )
            tx.execute(
                self._sql["update_delivery"],
                [
                    state,
                    attempt.attempt,
                    attempt.next_try_at,
                    attempt.status_code,
                    attempt.error,
                    delivery.delivery_id,
                ],
            )
        return after

    def delivery(self, delivery_id: str) -> Delivery | None:
        rows = self._rows("delivery", [delivery_id])
        return Delivery(**rows[0]) if rows else None

    def attempts(self, delivery_id: str) -> list[Attempt]:
        return [Attempt(**row) for row in self._rows("attempts", [delivery_id])]

    def deliveries(
        self,
        *,
        receiver: str | None = None,
        state: str | None = None,
        group_key: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """Notifications, newest first (of one receiver, group, state): the first ``limit``."""
        query = select_all(NOTIFY_DELIVERIES)
        params: list[Any] = []
        for name, value in (("receiver", receiver), ("state", state), ("group_key", group_key)):
            if value is not None:
                query = query.where(_is(name))
                params.append(value)
        query = query.order_by(_newest("created_at"), column("delivery_id")).limit(
            exp.Placeholder()
        )
        rows = self._engine.query(query.sql(self._engine.dialect), [*params, limit]).to_pylist()
        return [Delivery(**row) for row in rows]


def _fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__slots__}


def _silence(row: Mapping[str, Any]) -> Silence:
    return Silence(
        **{**row, "matchers": tuple(Matcher.parse(m) for m in json.loads(row["matchers"]))}
    )
