"""What a simulation run is asked to produce."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from banking_analytics.vocabulary import EventType

__all__ = ["EventSink", "SimulationConfig"]

#: Receives the generated events: one call per chunk, every chunk of one event
#: type in ascending ``occurred_at`` order.
EventSink = Callable[[EventType, pa.Table], None]

#: Offsets of one Arrow ``string`` chunk are 32-bit; the widest generated value
#: is 40 characters, so larger chunks could overflow them.
_MAX_CHUNK_EVENTS = 50_000_000
#: The highest ``activity``: 20 times the usual visits is some 500 behaviour events per
#: user in 90 days, already far beyond what the engagement model was drawn for.
MAX_ACTIVITY = 20.0


@dataclass(frozen=True)
class SimulationConfig:
    """Size, seed and time span of a simulated world.

    The world covers ``[end - days, end)``. The same configuration always yields
    the same events; ``chunk_events`` only changes how they are cut into chunks.

    ``activity`` multiplies every user's daily rate of visits (sessions of feature use,
    see ``_activity``), and with it the number of behaviour events, for a world with
    more use per user (1, the default, is the seed's own world, event for event). It does
    not touch link sessions (and their ``open_link`` events), the onboarding session after
    a first link, sync runs or the billing rules. Their counts still move a little: a
    feature's first use lifts its user's odds of upgrading, so more visits bring earlier
    first uses, more upgrades and, as paying users churn less, slightly different churn,
    links and syncs.
    """

    users: int = 20_000
    days: int = 90
    seed: int = 42
    chunk_events: int = 1_000_000
    end: datetime = field(kw_only=True)
    #: Institutions in the world; None draws 40 to 80 (the seed's own world).
    institutions: int | None = field(default=None, kw_only=True)
    #: Multiplier on every user's daily visit rate (0 < activity <= 20).
    activity: float = field(default=1.0, kw_only=True)

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError(f"users must be at least 1, got {self.users}")
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")
        if self.institutions is not None and not 5 <= self.institutions <= 1000:
            raise ValueError(f"institutions must be between 5 and 1000, got {self.institutions}")
        if not 0 < self.activity <= MAX_ACTIVITY:
            raise ValueError(
                f"activity must be above 0 and at most {MAX_ACTIVITY:g}, got {self.activity}"
            )
        if self.seed < 0:
            raise ValueError(f"seed must not be negative, got {self.seed}")
        if not 1 <= self.chunk_events <= _MAX_CHUNK_EVENTS:
            raise ValueError(
                f"chunk_events must be between 1 and {_MAX_CHUNK_EVENTS}, got {self.chunk_events}"
            )
        if self.end.tzinfo is None or self.end.utcoffset() is None:
            raise ValueError("end must be timezone-aware")
        object.__setattr__(self, "end", self.end.astimezone(UTC))

    @property
    def start(self) -> datetime:
        """The first instant of the simulated window."""
        return self.end - timedelta(days=self.days)
