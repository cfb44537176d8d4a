"""Plaid deliveries and Items in the store: which bodies came already, and each Item's state.

**Deliveries.** Plaid's webhooks have no id and no time, and Plaid retries a delivery it
thinks failed for up to 24 hours (30 s, then each wait 4x longer), signing each try
anew. So a delivery is named by its body's SHA-256 and the signing time of the first
time that body came (``first_signed_at``): a body already received less than
``retry_window`` (24 h) before is a retry, and takes that first time, so a retry makes
the same event ids at the same time and the store keeps the events once. The cost,
stated in docs/plaid.md: a body repeated word for word within the window (a second
``SYNC_UPDATES_AVAILABLE`` for the same Item, the same day) counts once.

**Items.** One row per Item: its institution (learnt from the host app's ``sync_run``
events, whose ``connection_id`` is the Item id), the host app's user, its
:class:`~banking_analytics.ingest._plaid.ItemState` and since when, the end of a pending
expiry or disconnection, the last webhook and the last error. Each part moves only
forward in Plaid's signing time: the state and the last webhook take a webhook signed
no earlier than the one they show, the last error an error signed no earlier than it. So
the row is the same whatever order the webhooks arrive in, but for webhooks signed in the
same second (``iat`` has whole seconds), where the later to arrive wins.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlglot
from sqlglot import exp

from banking_analytics.events import SCHEMAS, Kind
from banking_analytics.ingest._plaid import ItemChange, ItemOrigin, ItemState
from banking_analytics.store import Column, Engine, TableDef
from banking_analytics.store.statements import column, insert_row, select_all, table
from banking_analytics.vocabulary import Aggregator, EventType

__all__ = [
    "PLAID_DELIVERIES",
    "PLAID_ITEMS",
    "PLAID_RETRY_WINDOW",
    "PlaidItem",
    "PlaidItems",
]

#: Plaid retries a delivery for up to 24 hours.
PLAID_RETRY_WINDOW = timedelta(hours=24)
#: Deliveries older than the retry window name no retry to come: they are deleted once
#: per this many first deliveries.
_PURGE_EVERY = 1_000

PLAID_DELIVERIES = TableDef(
    "plaid_webhook_deliveries",
    (
        Column("body_sha256", Kind.TEXT, nullable=False),
        Column("first_signed_at", Kind.TIMESTAMP, nullable=False),
        Column("received_at", Kind.TIMESTAMP, nullable=False),
    ),
    lookup_columns=("body_sha256",),
)

PLAID_ITEMS = TableDef(
    "plaid_items",
    (
        Column("item_id", Kind.TEXT, nullable=False),
        Column("institution_id", Kind.TEXT),
        Column("user_id", Kind.TEXT),
        Column("environment", Kind.TEXT),
        Column("state", Kind.TEXT),
        Column("state_since", Kind.TIMESTAMP),
        Column("expires_at", Kind.TIMESTAMP),
        Column("last_webhook", Kind.TEXT),
        Column("last_webhook_at", Kind.TIMESTAMP),
        Column("error_code", Kind.TEXT),
        Column("error_type", Kind.TEXT),
        Column("error_category", Kind.TEXT),
        Column("error_at", Kind.TIMESTAMP),
        Column("updated_at", Kind.TIMESTAMP, nullable=False),
    ),
    lookup_columns=("item_id",),
)


#: States that turn into ``disconnected`` at their ``expires_at``.
_PENDING = (ItemState.PENDING_EXPIRATION, ItemState.PENDING_DISCONNECT)


@dataclass(slots=True)
class PlaidItem:
    """One Item's row (see the module); ``state`` is read as ``disconnected`` once a
    pending expiry or disconnection has passed ``expires_at``."""

    item_id: str
    institution_id: str | None
    user_id: str | None
    environment: str | None
    state: str | None
    state_since: datetime | None
    expires_at: datetime | None
    last_webhook: str | None
    last_webhook_at: datetime | None
    error_code: str | None
    error_type: str | None
    error_category: str | None
    error_at: datetime | None
    updated_at: datetime

    def current_state(self, now: datetime) -> str | None:
        if self.state in _PENDING and self.expires_at is not None and self.expires_at <= now:
            return ItemState.DISCONNECTED.value
        return self.state


def _timestamp(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _not_before(at: datetime, than: datetime | None) -> bool:
    return than is None or at >= than


class PlaidItems:
    """The deliveries and Items of a store (tables made on first use)."""

    def __init__(self, engine: Engine, retry_window: timedelta = PLAID_RETRY_WINDOW) -> None:
        engine.migrate([PLAID_DELIVERIES, PLAID_ITEMS])
        self._engine = engine
        self._retry_window = retry_window
        p = exp.Placeholder
        self._first_sql = (
            sqlglot.select(column("first_signed_at"))
            .from_(table(PLAID_DELIVERIES))
            .where(column("body_sha256").eq(p()), column("first_signed_at") >= p())
            .order_by(column("first_signed_at"))
            .limit(1)
            .sql(engine.dialect)
        )
        self._insert_delivery_sql = insert_row(PLAID_DELIVERIES).sql(engine.dialect)
        self._purge_sql = exp.delete(
            table(PLAID_DELIVERIES), where=column("first_signed_at") < p()
        ).sql(engine.dialect)
        self._first_deliveries = 0
        self._item_sql = (
            select_all(PLAID_ITEMS).where(column("item_id").eq(p())).sql(engine.dialect)
        )
        self._delete_item_sql = exp.delete(table(PLAID_ITEMS), where=column("item_id").eq(p())).sql(
            engine.dialect
        )
        self._insert_item_sql = insert_row(PLAID_ITEMS).sql(engine.dialect)
        syncs = SCHEMAS[EventType.SYNC_RUN].table
        self._origin_sql = (
            sqlglot.select(column("institution_id"), column("user_id"))
            .from_(exp.table_(syncs, quoted=True))
            .where(column("connection_id").eq(p()), column("aggregator").eq(p()))
            .order_by(exp.Ordered(this=column("occurred_at"), desc=True))
            .limit(1)
            .sql(engine.dialect)
        )

    def first_delivery(self, body_sha256: str, signed_at: datetime) -> tuple[datetime, bool]:
        """When this body first came (its first signing time) and whether this is a retry
        of it; records a first delivery. Under the table's lock: two tries of one body
        arriving at once agree on which was first."""
        with self._engine.begin() as tx:
            tx.lock(PLAID_DELIVERIES)
            rows = tx.execute(
                self._first_sql, [body_sha256, signed_at - self._retry_window]
            ).to_pylist()
            if rows:
                return rows[0]["first_signed_at"], True
            tx.execute(self._insert_delivery_sql, [body_sha256, signed_at, datetime.now(UTC)])
            self._first_deliveries += 1
            if self._first_deliveries % _PURGE_EVERY == 0:
                # Two windows back: a delivery still within one may be asked about.
                tx.execute(self._purge_sql, [signed_at - 2 * self._retry_window])
        return signed_at, False

    def origin(self, item_id: str) -> ItemOrigin | None:
        """The Item's institution and user: from its row, else from the host app's latest
        ``sync_run`` of it."""
        item = self.item(item_id)
        if item is not None and item.institution_id is not None:
            return ItemOrigin(item.institution_id, item.user_id)
        rows = self._engine.query(self._origin_sql, [item_id, Aggregator.PLAID.value]).to_pylist()
        if not rows:
            return None
        return ItemOrigin(rows[0]["institution_id"], rows[0]["user_id"])

    def item(self, item_id: str) -> PlaidItem | None:
        rows = self._engine.query(self._item_sql, [item_id]).to_pylist()
        return PlaidItem(**rows[0]) if rows else None

    def apply(
        self,
        change: ItemChange,
        *,
        webhook: str,
        at: datetime,
        origin: ItemOrigin | None,
        environment: str | None,
    ) -> PlaidItem:
        """Fold one webhook into its Item's row (see the module for the order); returns it."""
        now = datetime.now(UTC)
        with self._engine.begin() as tx:
            tx.lock(PLAID_ITEMS)
            rows = tx.execute(self._item_sql, [change.item_id]).to_pylist()
            item = PlaidItem(**rows[0]) if rows else _new_item(change.item_id, now)
            if item.institution_id is None and origin is not None:
                item.institution_id, item.user_id = origin.institution_id, origin.user_id
            item.environment = environment or item.environment
            if _not_before(at, item.last_webhook_at):
                item.last_webhook, item.last_webhook_at = webhook, at
            if change.state is not None and _not_before(at, item.state_since):
                item.state, item.state_since = change.state.value, at
                item.expires_at = _timestamp(change.expires_at)
            if change.error_category is not None and _not_before(at, item.error_at):
                item.error_code, item.error_type = change.error_code, change.error_type
                item.error_category, item.error_at = change.error_category.value, at
            item.updated_at = now
            tx.execute(self._delete_item_sql, [change.item_id])
            tx.execute(self._insert_item_sql, [getattr(item, f.name) for f in fields(PlaidItem)])
        return item

    def state_counts(self, now: datetime) -> list[dict[str, Any]]:
        """Items per institution and state as of ``now`` (a pending expiry or disconnection
        past its time counts as disconnected), by institution then state."""
        p = exp.Placeholder
        pending = [exp.Literal.string(s.value) for s in _PENDING]
        current = exp.Case(
            ifs=[
                exp.If(
                    this=exp.and_(column("state").isin(*pending), column("expires_at") <= p()),
                    true=exp.Literal.string(ItemState.DISCONNECTED.value),
                )
            ],
            default=column("state"),
        )
        inner = sqlglot.select(column("institution_id"), current.as_("state")).from_(
            table(PLAID_ITEMS)
        )
        sql = (
            sqlglot.select(
                column("institution_id"), column("state"), exp.Count(this=exp.Star()).as_("items")
            )
            .from_(inner.subquery("current_items"))
            .group_by(column("institution_id"), column("state"))
            .order_by(column("institution_id"), column("state"))
            .sql(self._engine.dialect)
        )
        counts: list[dict[str, Any]] = self._engine.query(sql, [now]).to_pylist()
        return counts

    def items(
        self,
        *,
        institution_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[PlaidItem]:
        """Items, by institution then id; one institution's with ``institution_id``."""
        query = select_all(PLAID_ITEMS).order_by(column("institution_id"), column("item_id"))
        params: list[Any] = []
        if institution_id is not None:
            query = query.where(column("institution_id").eq(exp.Placeholder()))
            params.append(institution_id)
        sql = query.limit(limit).offset(offset).sql(self._engine.dialect)
        return [PlaidItem(**row) for row in self._engine.query(sql, params).to_pylist()]


def _new_item(item_id: str, now: datetime) -> PlaidItem:
    values: dict[str, Any] = {f.name: None for f in fields(PlaidItem)}
    return PlaidItem(**{**values, "item_id": item_id, "updated_at": now})
