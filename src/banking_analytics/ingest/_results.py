"""What ingestion says about each event: accepted, duplicate or rejected (and why)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["BatchOutcome", "BatchPart", "EventError", "EventResult", "EventStatus"]


class EventStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


_STATUS_CODES = (EventStatus.ACCEPTED, EventStatus.DUPLICATE, EventStatus.REJECTED)


@dataclass(frozen=True, slots=True)
class EventError:
    """One reason an event was rejected; ``field`` is None when the whole payload is bad."""

    field: str | None
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


@dataclass(frozen=True, slots=True)
class EventResult:
    """The fate of one submitted event; ``position`` is its index (or line number)."""

    position: int
    status: EventStatus
    event_id: str | None = None
    event_type: str | None = None
    errors: tuple[EventError, ...] = ()
    flags: tuple[str, ...] = ()

    @property
    def reason(self) -> str | None:
        """All rejection reasons in one line, or None when not rejected."""
        return "; ".join(str(e) for e in self.errors) or None


@dataclass(slots=True)
class BatchOutcome:
    """Results of a batch, kept columnar so a million events cost little.

    Index ``i`` is the event at position ``first_position + i``: ``status`` holds
    0/1/2 for accepted/duplicate/rejected; ``event_ids``, ``event_types`` and
    ``flags`` (comma-joined) are string arrays, null where unknown.
    """

    first_position: int
    status: npt.NDArray[np.uint8]
    event_ids: pa.Array
    event_types: pa.Array
    flags: pa.Array
    errors: dict[int, tuple[EventError, ...]] = field(default_factory=dict)
    #: ``event_ids``, ``event_types`` and ``flags`` as Python lists, made on the first
    #: ``result()``: thousands of callers of one group commit each ask for one result.
    _lists: tuple[list[str | None], list[str | None], list[str | None]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def size(self) -> int:
        return len(self.status)

    def count(self, status: EventStatus) -> int:
        return int(np.count_nonzero(self.status == _STATUS_CODES.index(status)))

    def result(self, i: int, position: int | None = None) -> EventResult:
        """The result of the i-th event of this batch (0-based), reported at ``position``
        (by default its position in this batch)."""
        if self._lists is None:  # two threads may both make them: the same lists
            self._lists = (
                self.event_ids.to_pylist(),
                self.event_types.to_pylist(),
                self.flags.to_pylist(),
            )
        event_ids, event_types, all_flags = self._lists
        pos = self.first_position + i
        flags = all_flags[i]
        return EventResult(
            pos if position is None else position,
            _STATUS_CODES[self.status[i]],
            event_ids[i],
            event_types[i],
            self.errors.get(pos, ()),
            tuple(flags.split(",")) if flags else (),
        )

    def results(self) -> list[EventResult]:
        return [self.result(i) for i in range(self.size)]

    def rejected(self) -> list[EventResult]:
        return [self.result(int(i)) for i in np.flatnonzero(self.status == 2)]


@dataclass(frozen=True, slots=True)
class BatchPart:
    """One caller's share of a group commit: events ``start .. start + size`` of ``outcome``.

    Results are built on demand, so a caller that submitted one event pays for one.
    """

    outcome: BatchOutcome
    start: int
    size: int
    first_position: int

    def result(self, i: int) -> EventResult:
        """The i-th event of this part, numbered from the caller's ``first_position``."""
        return self.outcome.result(self.start + i, self.first_position + i)

    def results(self) -> list[EventResult]:
        return [self.result(i) for i in range(self.size)]
