"""Link-to-sync activation: users who linked a bank and then synced successfully soon after.

Of the users with a successful connection attempt (the events the catalogue
metric ``connection_successes`` counts) in a window ``[start, end)``, a user is
*activated* when one of their successful or partial sync runs (the events of
``sync_successes``) happened at most 24 hours after one of those links:
``link ≤ sync ≤ link + 24 h``. A sync after the window's end still counts for
a link inside it, so a link in the window's last day is judged on what has
been stored since. Users are told apart by ``user_id``; events without one
are not counted.

``activation_rate = activated users ÷ linked users`` (None without linked users).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlglot
from sqlglot import exp

from banking_analytics.events import SCHEMAS
from banking_analytics.metrics import (
    CATALOG,
    DataVersions,
    MetricService,
    Renderer,
    Statement,
    TimeWindow,
    count_condition,
    parse_time_period,
    to_records,
    window_condition,
)
from banking_analytics.store.statements import column
from banking_analytics.vocabulary import EventType

__all__ = ["ACTIVATION_WITHIN", "LinkActivation", "LinkActivations"]

#: How soon after a link a successful sync activates the user.
ACTIVATION_WITHIN = timedelta(hours=24)
_ATTEMPTS = SCHEMAS[EventType.CONNECTION_ATTEMPT].table
_SYNCS = SCHEMAS[EventType.SYNC_RUN].table


@dataclass(frozen=True, slots=True)
class LinkActivation:
    """Users who linked a bank in ``time_period``, and how many of them synced within
    :data:`ACTIVATION_WITHIN` after a link."""

    time_period: TimeWindow
    linked_users: int
    activated_users: int

    @property
    def activation_rate(self) -> float | None:
        """Activated users ÷ linked users; None when nobody linked."""
        return self.activated_users / self.linked_users if self.linked_users else None


class LinkActivations:
    """Counts link-to-sync activation with a custom statement of the metric layer."""

    def __init__(self, metrics: MetricService) -> None:
        self._metrics = metrics

    def link_activation(
        self,
        period: str | TimeWindow = "30d",
        *,
        now: datetime | None = None,
        versions: DataVersions | None = None,
    ) -> LinkActivation:
        """Activation of the users who linked a bank in ``period`` (see the module docs)."""
        window = parse_time_period(period, now)
        table = self._metrics.run_statement(
            Statement(
                _linked_then_synced,
                (window.start, window.end, window.start, window.end + ACTIVATION_WITHIN),
                (_ATTEMPTS, _SYNCS),
            ),
            versions,
        )
        [row] = to_records(table)
        return LinkActivation(window, row["linked_users"], row["activated_users"])


def _linked_then_synced(renderer: Renderer) -> exp.Select:
    """``linked_users`` and ``activated_users`` for links in a window ``[?, ?)``, given
    successful syncs in ``[?, ?)`` (the window's start to its end + the activation span)."""
    links = (
        sqlglot.select(column("user_id"), column("occurred_at").as_("linked_at"))
        .from_(_ATTEMPTS)
        .where(window_condition(), count_condition(CATALOG["connection_successes"], renderer))
        .subquery("links")
    )
    syncs = (
        sqlglot.select(column("user_id"), column("occurred_at").as_("synced_at"))
        .from_(_SYNCS)
        .where(window_condition(), count_condition(CATALOG["sync_successes"], renderer))
        .subquery("syncs")
    )
    linked_at = exp.column("linked_at", "links", quoted=True)
    synced_at = exp.column("synced_at", "syncs", quoted=True)
    span = exp.Interval(
        this=exp.Literal.string(str(int(ACTIVATION_WITHIN.total_seconds()))),
        unit=exp.var("SECOND"),
    )
    soon_after = exp.and_(
        exp.column("user_id", "syncs", quoted=True).eq(exp.column("user_id", "links", quoted=True)),
        synced_at >= linked_at,
        synced_at.copy() <= exp.Add(this=linked_at.copy(), expression=span),
    )
    return (
        sqlglot.select(
            _distinct_users("links").as_("linked_users"),
            _distinct_users("syncs").as_("activated_users"),
        )
        .from_(links)
        .join(syncs, on=soon_after, join_type="left")
    )


def _distinct_users(relation: str) -> exp.Expr:
    return exp.Count(this=exp.Distinct(expressions=[exp.column("user_id", relation, quoted=True)]))
