"""The engine contract, the same on every engine: types, transactions, dedup window, reads."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from banking_analytics.events import Kind, arrow_type
from banking_analytics.store import Column, Engine, TableDef

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
WINDOW = timedelta(days=7)

KINDS = TableDef(
    "kinds",
    (Column("n", Kind.INTEGER, nullable=False), *(Column(k.value, k) for k in Kind)),
)
EVENTS = TableDef(
    "events",
    (Column("event_id", Kind.UUID, nullable=False), Column("occurred_at", Kind.TIMESTAMP)),
    time_column="occurred_at",
)

# One row per awkward value; n orders them.
ROWS: list[dict[str, object]] = [
    {"n": 0},  # every other column NULL
    {"n": 1, "identifier": "", "text": "", "enum": "", "json": "{}", "float": 0.0,
     "integer": 0, "boolean": False},
    {"n": 2, "identifier": "user_1:a@b", "text": 'Société "Générale", 🏦\nline 2\\ \t;',
     "enum": "x", "uuid": "123e4567-e89b-12d3-a456-426614174000",
     "json": '{"a": [1, 2.5, "é🏦"], "b": {"c": null}}', "float": 5e-324,
     "integer": 2**63 - 1, "boolean": True, "timestamp": T0},
    {"n": 3, "text": ",,,\"\"", "float": 1.7976931348623157e308, "integer": -(2**63),
     "timestamp": datetime(1970, 1, 1, tzinfo=UTC), "json": '{"quote": "\\"", "nl": "\\n"}'},
    {"n": 4, "text": "NULL", "float": -0.1, "timestamp": datetime(9999, 12, 31, 23, 59, 59,
     999999, tzinfo=UTC)},
]  # fmt: skip


def kinds_table(rows: list[dict[str, object]]) -> pa.Table:
    return pa.table(
        {c.name: pa.array([r.get(c.name) for r in rows], arrow_type(c.kind)) for c in KINDS.columns}
    )


def events_table(*events: tuple[str, datetime]) -> pa.Table:
    return pa.table(
        {
            "event_id": pa.array([e[0] for e in events], pa.string()),
            "occurred_at": pa.array([e[1] for e in events], arrow_type(Kind.TIMESTAMP)),
        }
    )


def test_every_column_kind_round_trips_with_its_arrow_type(engine: Engine) -> None:
    engine.migrate([KINDS])
    with engine.begin() as tx:
        tx.append(KINDS, kinds_table(ROWS))
    stored = engine.query("SELECT * FROM kinds ORDER BY n")
    empty = engine.query("SELECT * FROM kinds WHERE n < 0")
    expected = kinds_table(ROWS)
    assert stored.schema.types == expected.schema.types
    assert empty.schema.types == expected.schema.types
    got = stored.to_pylist()
    for row in got:  # PostgreSQL's jsonb normalises the text; compare what it means
        row["json"] = row["json"] and json.loads(row["json"])
    want = expected.to_pylist()
    for row in want:
        row["json"] = row["json"] and json.loads(row["json"])
    assert got == want


@pytest.mark.notimpl(["postgres"], reason="jsonb keeps the meaning of JSON, not its text")
def test_json_text_is_kept_verbatim(engine: Engine) -> None:
    engine.migrate([KINDS])
    text = '{"b": 1,  "a": 2}'
    with engine.begin() as tx:
        tx.append(KINDS, kinds_table([{"n": 1, "json": text}]))
    assert engine.query("SELECT json FROM kinds")["json"].to_pylist() == [text]


def test_dedup_window_is_the_batch_time_range_widened_by_the_window(engine: Engine) -> None:
    engine.migrate([EVENTS])
    a, b, c = (str(uuid.uuid4()) for _ in range(3))

    def insert(*events: tuple[str, datetime]) -> list[bool]:
        with engine.begin() as tx:
            mask: list[bool] = tx.insert_events(EVENTS, events_table(*events), WINDOW).to_pylist()
        return mask

    assert insert((a, T0)) == [True]
    # a is stored at T0, inside [T0+6d-7d, T0+6d+7d]: a duplicate; b is new.
    assert insert((a, T0 + timedelta(days=6)), (b, T0 + timedelta(days=6))) == [False, True]
    # At T0+30d the window [T0+23d, T0+37d] holds no a: stored again.
    assert insert((a, T0 + timedelta(days=30))) == [True]
    # The window spans the whole batch: [T0+13d, T0+47d] holds the a of T0+30d.
    assert insert((c, T0 + timedelta(days=20)), (a, T0 + timedelta(days=40))) == [True, False]
    assert insert() == []
    counts = engine.query(
        "SELECT CAST(event_id AS VARCHAR) AS id, count(*) AS n FROM events GROUP BY 1"
    ).to_pydict()
    assert dict(zip(counts["id"], counts["n"], strict=True)) == {a: 2, b: 1, c: 1}


def test_a_failed_transaction_leaves_nothing(engine: Engine) -> None:
    engine.migrate([EVENTS])

    def write_then_fail() -> None:
        with engine.begin() as tx:
            tx.insert_events(EVENTS, events_table((str(uuid.uuid4()), T0)), WINDOW)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()
    assert engine.query("SELECT count(*) AS n FROM events")["n"].to_pylist() == [0]


def test_reads_run_while_a_write_is_open_and_see_only_commits(engine: Engine) -> None:
    engine.migrate([EVENTS])
    written, release = threading.Event(), threading.Event()

    def writer() -> None:
        with engine.begin() as tx:
            tx.insert_events(EVENTS, events_table((str(uuid.uuid4()), T0)), WINDOW)
            written.set()
            release.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert written.wait(30)
        assert engine.query("SELECT count(*) AS n FROM events")["n"].to_pylist() == [0]
    finally:
        release.set()
        thread.join()
    assert engine.query("SELECT count(*) AS n FROM events")["n"].to_pylist() == [1]


def test_placeholders_are_the_dialects(engine: Engine) -> None:
    engine.migrate([KINDS])
    with engine.begin() as tx:
        tx.append(KINDS, kinds_table(ROWS))
    query = (
        sqlglot.select("n")
        .from_("kinds")
        .where(exp.column("text").eq(exp.Placeholder()))
        .where(exp.column("timestamp").eq(exp.Placeholder()))
    )
    found = engine.query(query.sql(engine.dialect), [ROWS[2]["text"], T0])
    assert found["n"].to_pylist() == [2]
    # Without parameters the SQL text is left alone, % included.
    like = engine.query("SELECT n FROM kinds WHERE text LIKE '%,%' ORDER BY n")
    assert like["n"].to_pylist() == [2, 3]
