"""The hash-chained audit log on every engine: the chain, its checks, tampering, concurrency.

Tampering goes straight to the store (duckdb / psycopg), as someone with write
access to it would, behind the library's back.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
import pytest
from sqlglot import exp

from banking_analytics.access import AuditEntry, AuditLog
from banking_analytics.access import _audit as audit_module
from banking_analytics.events import Kind
from banking_analytics.store import Column, Engine, TableDef, open_engine

GENESIS = "0" * 64


@pytest.fixture
def log(engine: Engine) -> AuditLog:
    return AuditLog(engine)


def record(log: AuditLog, n: int, actor: str = "key:abc") -> list[AuditEntry]:
    return [
        log.record(
            actor=actor,
            actor_role="admin",
            action="api_key.create" if i % 2 else "metrics.read",
            outcome="success",
            object_type="api_key",
            object_id=f"k{i}",
            client_ip="192.0.2.1",
            details={"i": i, "note": "é 🏦", "nested": {"b": [1, 2.5, None], "a": True}},
        )
        for i in range(n)
    ]


def tamper(store_url: str, *statements: str) -> None:
    if store_url.startswith("duckdb:///"):
        with duckdb.connect(store_url.removeprefix("duckdb:///")) as conn:
            for statement in statements:
                conn.execute(statement)
        return
    server, schema = store_url.split("?schema=")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        for statement in statements:
            conn.execute(statement)


def documented_hash(entry: AuditEntry | dict[str, Any]) -> str:
    """The module's formula, written out again: sha256(prev_hash + canonical JSON)."""
    fields = (
        dict(entry)
        if isinstance(entry, dict)
        else {name: getattr(entry, name) for name in AuditEntry.__slots__}
    )
    del fields["hash"]
    fields["occurred_at"] = fields["occurred_at"].astimezone(UTC).isoformat(timespec="microseconds")
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((fields["prev_hash"] + body).encode("utf-8")).hexdigest()


# -- an intact chain ------------------------------------------------------------------------


def test_entries_form_a_chain_by_the_documented_formula(log: AuditLog) -> None:
    entries = record(log, 12)
    assert [e.seq for e in entries] == list(range(1, 13))
    assert entries[0].prev_hash == GENESIS
    for before, entry in itertools.pairwise(entries):
        assert entry.prev_hash == before.hash
    for entry in entries:
        assert entry.hash == documented_hash(entry)
        assert entry.occurred_at.tzinfo is not None


def test_an_intact_chain_verifies_and_reports_its_head(log: AuditLog) -> None:
    entries = record(log, 25)
    report = log.verify()
    assert (report.ok, report.checked, report.first_broken_seq, report.reason) == (
        True,
        25,
        None,
        None,
    )
    assert report.head_hash == entries[-1].hash


def test_an_empty_log_verifies(log: AuditLog) -> None:
    report = log.verify()
    assert (report.ok, report.checked, report.head_hash) == (True, 0, None)


def test_entries_read_back_as_recorded_newest_first(log: AuditLog) -> None:
    entries = record(log, 7)
    assert log.entries() == entries[::-1]
    assert log.entries(limit=3) == entries[:-4:-1]
    assert log.entries(limit=2, before_seq=5) == [entries[3], entries[2]]
    assert [e.seq for e in log.entries(action="api_key.create")] == [6, 4, 2]
    record(log, 1, actor="user:u1")
    assert [e.seq for e in log.entries(actor="user:u1")] == [8]
    assert log.entries(actor="user:u1", action="api_key.create") == []


def test_details_come_back_as_json_would_have_them(log: AuditLog) -> None:
    entry = log.record(
        actor="a", actor_role="admin", action="x", outcome="ok", details={"t": (1, 2)}
    )
    assert entry.details == {"t": [1, 2]}
    assert log.entries() == [entry]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"actor": ""}, "actor"),
        ({"action": ""}, "action"),
        ({"outcome": ""}, "outcome"),
        ({"details": {"x": float("nan")}}, "JSON"),
        ({"details": {"x": {1, 2}}}, "JSON"),
    ],
)
def test_bad_entries_are_refused(
    log: AuditLog, engine: Engine, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"actor": "a", "actor_role": "admin", "action": "x", "outcome": "ok"}
    with pytest.raises(ValueError, match=message):
        log.record(**{**args, **kwargs})
    assert log.verify().checked == 0


def test_bad_arguments_are_refused(log: AuditLog) -> None:
    for limit in (0, 10_001):
        with pytest.raises(ValueError, match="limit"):
            log.entries(limit=limit)
    with pytest.raises(ValueError, match="expected_head"):
        log.verify(expected_head="abc")


# -- tampering ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        "outcome = 'denied'",
        "actor = 'key:someone-else'",
        "occurred_at = occurred_at + INTERVAL '1 second'",
        "object_id = NULL",
        """details = '{"i":2}'""",
        # The same meaning in other text: still not what was recorded.
        "details = replace(details, ',', ', ')",
        "hash = '" + "f" * 64 + "'",
    ],
)
def test_an_altered_entry_is_found(
    store_url: str, log: AuditLog, engine: Engine, change: str
) -> None:
    record(log, 5)
    tamper(store_url, f"UPDATE audit_log SET {change} WHERE seq = 3")
    report = log.verify()
    assert (report.ok, report.first_broken_seq, report.checked) == (False, 3, 2)
    assert report.reason is not None
    assert "altered" in report.reason
    assert report.head_hash == log.entries(before_seq=3, limit=1)[0].hash


def test_a_deleted_entry_is_found(store_url: str, log: AuditLog) -> None:
    record(log, 5)
    tamper(store_url, "DELETE FROM audit_log WHERE seq = 3")
    report = log.verify()
    assert (report.ok, report.first_broken_seq, report.checked) == (False, 3, 2)
    assert "seq 4 where 3 was expected" in (report.reason or "")


def test_a_deleted_first_entry_is_found(store_url: str, log: AuditLog) -> None:
    record(log, 3)
    tamper(store_url, "DELETE FROM audit_log WHERE seq = 1")
    report = log.verify()
    assert (report.ok, report.first_broken_seq, report.checked, report.head_hash) == (
        False,
        1,
        0,
        None,
    )


def test_a_forged_entry_slipped_in_is_found_where_the_chain_breaks(
    store_url: str, log: AuditLog
) -> None:
    entries = record(log, 5)
    forged: dict[str, Any] = {
        "seq": 3,
        "occurred_at": entries[1].occurred_at,
        "actor": "key:mallory",
        "actor_role": "admin",
        "action": "api_key.create",
        "object_type": None,
        "object_id": None,
        "client_ip": None,
        "outcome": "success",
        "details": {},
        "prev_hash": entries[1].hash,
    }
    forged["hash"] = documented_hash({**forged, "hash": ""})
    tamper(
        store_url,
        "UPDATE audit_log SET seq = seq + 1 WHERE seq >= 3",
        "INSERT INTO audit_log (seq, occurred_at, actor, actor_role, action, outcome, details, "
        f"prev_hash, hash) VALUES (3, TIMESTAMPTZ '{forged['occurred_at'].isoformat()}', "
        "'key:mallory', 'admin', 'api_key.create', 'success', '{}', "
        f"'{forged['prev_hash']}', '{forged['hash']}')",
    )
    report = log.verify()
    # The forgery itself is a well-formed link; the entry after it no longer is.
    assert (report.ok, report.first_broken_seq, report.checked) == (False, 4, 3)
    assert report.head_hash == forged["hash"]


def test_a_crude_insertion_is_found(store_url: str, log: AuditLog) -> None:
    entries = record(log, 5)
    tamper(
        store_url,
        "INSERT INTO audit_log (seq, occurred_at, actor, actor_role, action, outcome, details, "
        f"prev_hash, hash) VALUES (3, TIMESTAMPTZ '2026-01-01 00:00:00+00', 'key:mallory', "
        f"'admin', 'x', 'success', '{{}}', '{entries[1].hash}', '{'0' * 64}')",
    )
    report = log.verify()
    assert (report.ok, report.first_broken_seq) == (False, 3)


def test_reordered_entries_are_found(store_url: str, log: AuditLog) -> None:
    record(log, 5)
    tamper(
        store_url,
        "UPDATE audit_log SET seq = CASE seq WHEN 2 THEN 3 ELSE 2 END WHERE seq IN (2, 3)",
    )
    report = log.verify()
    assert (report.ok, report.first_broken_seq, report.checked) == (False, 2, 1)


def test_a_truncated_tail_is_found_only_against_an_exported_head(
    store_url: str, log: AuditLog
) -> None:
    record(log, 5)
    head = log.verify().head_hash
    assert head is not None
    tamper(store_url, "DELETE FROM audit_log WHERE seq >= 4")

    # On its own, a shorter chain is a valid chain: what the module says it cannot prove.
    shortened = log.verify()
    assert (shortened.ok, shortened.checked) == (True, 3)

    report = log.verify(expected_head=head)
    assert (report.ok, report.first_broken_seq, report.checked) == (False, 4, 3)
    assert "expected head" in (report.reason or "")


def test_an_exported_head_is_still_reached_as_the_log_grows(log: AuditLog) -> None:
    record(log, 3)
    head = log.verify().head_hash
    record(log, 4)
    report = log.verify(expected_head=head)
    assert (report.ok, report.checked) == (True, 7)
    assert not log.verify(expected_head="e" * 64).ok


def test_a_repeated_seq_at_a_page_boundary_is_found(
    store_url: str, log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_module, "_PAGE_ROWS", 2)
    entries = record(log, 7)
    assert log.verify().checked == 7
    # A copy of entry 2, the last row of the first page.
    copy = entries[1]
    tamper(
        store_url,
        "INSERT INTO audit_log SELECT * FROM audit_log WHERE seq = 2",
    )
    report = log.verify()
    assert (report.ok, report.first_broken_seq, report.checked) == (False, 2, 2)
    assert report.head_hash == copy.hash


# -- concurrency ----------------------------------------------------------------------------


def test_concurrent_recorders_make_one_chain(store_url: str) -> None:
    threads, per_thread = 8, 25
    engines = [open_engine(store_url) for _ in range(threads)]
    logs = [AuditLog(e) for e in engines]
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(i: int) -> None:
        try:
            start.wait()
            record(logs[i], per_thread, actor=f"thread-{i}")
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    try:
        assert errors == []
        report = logs[0].verify()
        assert (report.ok, report.checked) == (True, threads * per_thread)
        seqs = [e.seq for e in logs[0].entries(limit=10_000)]
        assert seqs == list(range(threads * per_thread, 0, -1))
    finally:
        for e in engines:
            e.close()


@pytest.mark.postgres
def test_recorders_in_several_processes_make_one_chain(postgres_store_url: str) -> None:
    script = (
        "import sys\n"
        "from banking_analytics.access import AuditLog\n"
        "from banking_analytics.store import open_engine\n"
        "with open_engine(sys.argv[1]) as engine:\n"
        "    log = AuditLog(engine)\n"
        "    for i in range(30):\n"
        "        log.record(actor=sys.argv[2], actor_role='admin', action='x', outcome='ok')\n"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script, postgres_store_url, f"p{i}"])
        for i in range(4)
    ]
    assert [p.wait(timeout=120) for p in processes] == [0, 0, 0, 0]
    with open_engine(postgres_store_url) as engine:
        report = AuditLog(engine).verify()
    assert (report.ok, report.checked) == (True, 120)


# -- the engine statements the log is built on ----------------------------------------------

NUMBERS = TableDef(
    "numbers", (Column("n", Kind.INTEGER, nullable=False), Column("stamp", Kind.TIMESTAMP))
)


def test_statements_in_a_transaction_see_its_writes_and_answer_rows(engine: Engine) -> None:
    engine.migrate([NUMBERS])
    at = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    mark = exp.Placeholder().sql(engine.dialect)
    with engine.begin() as tx:
        tx.lock(NUMBERS)
        inserted = tx.execute(f"INSERT INTO numbers (n, stamp) VALUES ({mark}, {mark})", [1, at])
        assert inserted.num_columns == 0
        seen = tx.execute("SELECT n, stamp FROM numbers")
        assert seen.schema.field("stamp").type == pa.timestamp("us", tz="UTC")
        assert seen.to_pylist() == [{"n": 1, "stamp": at}]
        assert tx.execute("UPDATE numbers SET n = 2").num_columns == 0
        assert tx.execute("UPDATE numbers SET n = 3 RETURNING n").to_pylist() == [{"n": 3}]
        # Rows that merely look like DuckDB's status answer are rows.
        counted = tx.execute('SELECT count(*) AS "Count" FROM numbers')
        assert counted.to_pylist() == [{"Count": 1}]
    assert engine.query("SELECT n FROM numbers").to_pylist() == [{"n": 3}]
