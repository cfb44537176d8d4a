"""The group-commit writer: how callers' batches are grouped, answered and shut down."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from banking_analytics import EventStatus
from banking_analytics.ingest import (
    Decoded,
    GroupCommitWriter,
    IngestPipeline,
    WriterClosedError,
    decode_records,
)
from banking_analytics.store import Engine
from sample_events import behavior_events


class _CountingPipeline(IngestPipeline):
    """The real pipeline, noting how many events each commit carried."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.group_sizes: list[int] = []

    def write(self, decoded: Decoded):  # type: ignore[no-untyped-def]
        self.group_sizes.append(decoded.size)
        return super().write(decoded)


@pytest.fixture
def pipeline(engine: Engine) -> _CountingPipeline:
    return _CountingPipeline(engine)


@pytest.fixture
def writer(pipeline: _CountingPipeline) -> Iterator[GroupCommitWriter]:
    writer = GroupCommitWriter(pipeline, max_group_events=5)
    yield writer
    writer.close()


def _batch(n: int) -> Decoded:
    return decode_records(behavior_events(n), 0, 64 * 1024, "test")


@pytest.mark.duckdb
@pytest.mark.parametrize("store_url", ["duckdb"], indirect=True)
def test_groups_take_what_queued_up_to_the_bound(
    engine: Engine, pipeline: _CountingPipeline, writer: GroupCommitWriter
) -> None:
    lock = engine._write_lock  # type: ignore[attr-defined]
    with lock:  # the writer blocks on the first group while the others queue
        first = writer.submit(_batch(1))
        while not pipeline.group_sizes:
            threading.Event().wait(0.01)
        tickets = [writer.submit(_batch(n)) for n in (2, 2, 3, 1, 6)]
    for ticket in [first, *tickets]:
        assert [r.status for r in ticket.result(30).results()] == [EventStatus.ACCEPTED] * (
            ticket.result().size
        )
    # 2+2 fit under 5; 3 would not, so it starts the next group with the 1; a batch
    # larger than the bound goes alone.
    assert pipeline.group_sizes == [1, 4, 4, 6]


def test_every_caller_gets_its_own_events_back(writer: GroupCommitWriter) -> None:
    """Eight threads submit single events at once; each result names that event."""
    mismatches: list[str] = []

    def produce() -> None:
        events = behavior_events(40)
        tickets = [
            (event["event_id"], writer.submit(decode_records([event], 0, 64 * 1024, "test")))
            for event in events
        ]
        for event_id, ticket in tickets:
            result = ticket.result(30).result(0)
            if result.event_id != event_id or result.status is not EventStatus.ACCEPTED:
                mismatches.append(f"{event_id}: {result}")

    threads = [threading.Thread(target=produce) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mismatches == []


def test_close_writes_everything_submitted_then_refuses(writer: GroupCommitWriter) -> None:
    tickets = [writer.submit(_batch(1)) for _ in range(30)]
    writer.close()
    assert all(t.done() for t in tickets)
    assert {t.result(0).result(0).status for t in tickets} == {EventStatus.ACCEPTED}
    with pytest.raises(WriterClosedError):
        writer.submit(_batch(1))


def test_a_submission_racing_close_is_answered_not_lost(writer: GroupCommitWriter) -> None:
    """A caller that passed the closed check just before ``close()`` and queued after
    the writer stopped hears that the writer is closed instead of waiting forever."""
    writer.close()
    writer._closing = False  # as seen by a caller that checked before close() ran
    late = writer.submit(_batch(1))
    assert late.done()
    with pytest.raises(WriterClosedError):
        late.result(0)
