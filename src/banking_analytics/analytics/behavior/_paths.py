"""Paths: the top transitions between features (or feature actions) within sessions.

PostHog's semantics. A path is one session's behaviour events in order (by
``occurred_at``, then ``event_id``): a session is the client's ``session_id``
when the events carry one, otherwise a run of the user's events without one with
no gap of ``session_gap`` (30 minutes) or more. Each event is a node,
``feature/action`` (or the ``feature`` alone); a node repeated back to back is
one step. Steps are numbered from 1 and at most ``max_steps`` of each path are
read:

* from its first step, by default;
* with a ``start_point``: from the path's first occurrence of that node (a path
  without it is left out);
* with an ``end_point``: the ``max_steps`` steps ending at the path's last occurrence
  of that node (numbered from 1 at the first of them).

Sessions are cut by the rule :mod:`._sessions` states; here with windows over each user's
events, as a path needs them in order anyway, where the sessions query hashes slices to
avoid sorting (``tests/test_behavior_sessions_agree.py`` holds the two to one rule).

A transition is a step and the next one: ``(step, source, target)``. Its count is the
number of paths making it, so **transitions, not users**, are counted; the ``limit``
most frequent come first (ties by step, then names).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, ClassVar

import sqlglot
from sqlglot import exp

from banking_analytics.analytics._shape import Period, Shape
from banking_analytics.analytics.behavior._query import (
    BEHAVIOR_TABLE,
    DEFAULT_SESSION_GAP,
    MAX_STEPS,
    BehaviorQuery,
    BehaviorQueryError,
    EventFilter,
)
from banking_analytics.metrics import MetricService, Renderer, Statement

__all__ = ["MAX_TRANSITIONS", "PathNode", "Paths", "PathsQuery", "PathsResult", "Transition"]

#: The most transitions one answer lists (PostHog shows 50 by default).
MAX_TRANSITIONS = 500


class PathNode(StrEnum):
    """What a step is: a feature and action (``spending_analysis/view``) or the feature."""

    ACTION = "action"
    FEATURE = "feature"


@dataclass(frozen=True, slots=True, kw_only=True)
class PathsQuery(BehaviorQuery):
    """A paths query (see the module docs); ``events`` filters the behaviour events read."""

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    node: PathNode = PathNode.ACTION
    start_point: str | None = None
    end_point: str | None = None
    max_steps: int = 5
    limit: int = 50
    session_gap: timedelta = DEFAULT_SESSION_GAP

    def __post_init__(self) -> None:
        BehaviorQuery.__post_init__(self)
        object.__setattr__(self, "node", PathNode(self.node))
        if self.start_point is not None and self.end_point is not None:
            raise BehaviorQueryError("give a start_point or an end_point, not both")
        if not 2 <= self.max_steps <= MAX_STEPS:
            raise BehaviorQueryError(f"max_steps must be 2 to {MAX_STEPS}")
        if not 1 <= self.limit <= MAX_TRANSITIONS:
            raise BehaviorQueryError(f"limit must be 1 to {MAX_TRANSITIONS}")
        if not timedelta(minutes=1) <= self.session_gap <= timedelta(days=1):
            raise BehaviorQueryError("session_gap must be 1 minute to 1 day")
        for point in (self.start_point, self.end_point):
            if point is not None and not 0 < len(point) <= 200:
                raise BehaviorQueryError("a start or end point is 1 to 200 characters")

    @property
    def _point(self) -> str | None:
        return "start" if self.start_point is not None else "end" if self.end_point else None

    @property
    def _params(self) -> tuple[object, ...]:
        """Values in the SQL's order (see :func:`_paths_query`)."""
        point = self.start_point if self.start_point is not None else self.end_point
        return (
            self.date_from,
            self.date_to,
            *self.events.params,
            self.session_gap.total_seconds(),
            *((point,) if point is not None else ()),
            # The end point's range names max_steps twice (the first step, and the bound).
            *((self.max_steps,) * (2 if self._point == "end" else 1)),
            self.limit,
        )


@dataclass(slots=True, eq=False)
class Transition(Shape):
    step: int
    """The source's step number (the target is the next one)."""
    source: str
    target: str
    transitions: int
    """Paths making this transition at this step."""


@dataclass(slots=True, eq=False)
class PathsResult(Shape):
    period: Period
    node: str
    start_point: str | None
    end_point: str | None
    max_steps: int
    paths: int
    """Paths (sessions) read, after the start or end point."""
    transitions: list[Transition]


def _x(text: str) -> exp.Expr:
    return sqlglot.parse_one(text)


_SESSION = "PARTITION BY user_id, session_id, part"
_ORDER = f"{_SESSION} ORDER BY t, event_id"


def _paths_query(renderer: Renderer, *shape: object) -> exp.Query:
    """The top transitions, each row also carrying the number of paths read."""
    del renderer  # nothing here is spelled differently per engine
    node, point, behaviour_filter = shape
    assert isinstance(behaviour_filter, tuple)
    label = "feature || '/' || action" if node is PathNode.ACTION else "feature"
    rows = _x("occurred_at >= ? AND occurred_at < ? AND user_id IS NOT NULL")
    if chosen := EventFilter.condition(behaviour_filter):
        rows = exp.and_(rows, chosen)
    events = (
        sqlglot.select(
            *(
                _x(c)
                for c in (
                    "user_id",
                    "session_id",
                    "event_id",
                    "TIME_TO_UNIX(occurred_at) AS t",
                    f"{label} AS node",
                )
            )
        )
        .from_(exp.table_(BEHAVIOR_TABLE, quoted=True))
        .where(rows)
        # Sessions are a user's: an event without a user is in none.
        .where(_x("NOT user_id IS NULL"))
    )
    # Events without a session id: a new session after a gap of session_gap or more.
    gaps = _x(
        "SELECT *, CASE WHEN NOT session_id IS NULL THEN 0 WHEN t - LAG(t) OVER "
        "(PARTITION BY user_id, session_id ORDER BY t, event_id) < ? THEN 0 ELSE 1 END AS new "
        "FROM ev"
    )
    sessions = _x(
        "SELECT *, SUM(new) OVER (PARTITION BY user_id, session_id ORDER BY t, event_id "
        "ROWS UNBOUNDED PRECEDING) AS part FROM gaps"
    )
    repeats = _x(f"SELECT *, LAG(node) OVER ({_ORDER}) AS previous FROM sessions")
    steps = _x(
        f"SELECT user_id, session_id, part, t, event_id, node, "
        f"ROW_NUMBER() OVER ({_ORDER}) AS idx FROM repeats "
        "WHERE previous IS NULL OR previous <> node"
    )
    if point == "start":
        anchored = _x(
            f"SELECT *, MIN(CASE WHEN node = ? THEN idx END) OVER ({_SESSION}) AS anchor FROM steps"
        )
        ranged = _x(
            "SELECT *, idx - anchor + 1 AS rel FROM anchored "
            "WHERE NOT anchor IS NULL AND idx >= anchor AND idx - anchor + 1 <= ?"
        )
    elif point == "end":
        anchored = _x(
            f"SELECT *, MAX(CASE WHEN node = ? THEN idx END) OVER ({_SESSION}) AS anchor FROM steps"
        )
        ranged = _x(
            "SELECT *, idx - GREATEST(anchor - ? + 1, 1) + 1 AS rel FROM anchored "
            "WHERE NOT anchor IS NULL AND idx <= anchor AND idx >= anchor - ? + 1"
        )
    else:
        anchored = _x("SELECT * FROM steps")
        ranged = _x("SELECT *, idx AS rel FROM anchored WHERE idx <= ?")
    edges = _x(
        f"SELECT user_id, session_id, part, rel, node, LEAD(node) OVER ({_SESSION} ORDER BY rel) "
        "AS target FROM ranged"
    )
    counted = _x(
        "SELECT rel AS step, node AS source, target, COUNT(*) AS transitions FROM edges "
        "WHERE NOT target IS NULL GROUP BY rel, node, target"
    )
    final = _x(
        # One row even without a transition: the count of paths read is in every row.
        "SELECT step, source, target, transitions, read.paths AS paths "
        "FROM (SELECT COUNT(*) AS paths FROM edges WHERE rel = 1) AS read "
        "LEFT JOIN counted ON TRUE "
        "ORDER BY transitions DESC NULLS LAST, step, source, target LIMIT ?"
    )
    assert isinstance(final, exp.Select)
    ctes = [
        ("ev", events),
        ("gaps", gaps),
        ("sessions", sessions),
        ("repeats", repeats),
        ("steps", steps),
        ("anchored", anchored),
        ("ranged", ranged),
        ("edges", edges),
        ("counted", counted),
    ]
    for name, query in ctes:
        final = final.with_(name, as_=query, copy=False)
    return final


class Paths:
    """Runs paths queries through the metric layer."""

    def __init__(self, metrics: MetricService) -> None:
        self._metrics = metrics

    def run(self, query: PathsQuery) -> PathsResult:
        table = self._metrics.run_statement(
            Statement(
                _paths_query,
                query._params,
                (BEHAVIOR_TABLE,),
                (query.node, query._point, query.events.shape),
            )
        )
        rows = table.to_pylist()
        return PathsResult(
            period=Period.of(query.window),
            node=query.node.value,
            start_point=query.start_point,
            end_point=query.end_point,
            max_steps=query.max_steps,
            paths=int(rows[0]["paths"]) if rows else 0,
            transitions=[
                Transition(
                    step=int(r["step"]),
                    source=str(r["source"]),
                    target=str(r["target"]),
                    transitions=int(r["transitions"]),
                )
                for r in rows
                if r["step"] is not None
            ],
        )
