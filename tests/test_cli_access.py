"""``keys`` and ``audit`` commands on every engine: output, secrets shown once, exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import psycopg
import pytest
from typer.testing import CliRunner, Result

from banking_analytics.access import AuditLog, KeyStore, Role
from banking_analytics.cli import app
from banking_analytics.store import open_engine

TOKEN = re.compile(r"ba_live_[a-z2-7]{16}_[A-Za-z0-9_-]{43}")


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def record(store_url: str, n: int) -> None:
    with open_engine(store_url) as engine:
        log = AuditLog(engine)
        for i in range(n):
            log.record(actor="key:abc", actor_role="admin", action=f"a{i}", outcome="success")


def tamper(store_url: str, statement: str) -> None:
    if store_url.startswith("duckdb:///"):
        with duckdb.connect(store_url.removeprefix("duckdb:///")) as conn:
            conn.execute(statement)
        return
    server, schema = store_url.split("?schema=")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute(statement)


def test_create_shows_the_token_once_and_it_works(store_url: str) -> None:
    result = cli("keys", "create", "--name", "app servers", "--role", "ingest", "--db", store_url)
    assert result.exit_code == 0, result.stderr
    tokens = TOKEN.findall(result.stdout)
    assert len(tokens) == 1
    assert "not shown again" in result.stderr
    assert "expires never" in result.stdout
    with open_engine(store_url) as engine:
        key = KeyStore(engine).authenticate(tokens[0])
    assert key is not None
    assert (key.role, key.name, key.created_by) == (Role.INGEST, "app servers", "cli")


def test_create_list_and_revoke_as_json(store_url: str) -> None:
    created = cli(
        "keys", "create", "--name", "[ci]", "--role", "admin", "--expires-in", "90d",
        "--json", "--db", store_url,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    issued = json.loads(created.stdout)
    assert TOKEN.fullmatch(issued["token"])
    assert (issued["role"], issued["active"], issued["name"]) == ("admin", True, "[ci]")
    assert issued["expires_at"] is not None
    secret = issued["token"].split("_", 3)[3]  # the secret may hold "_" itself

    listed = cli("keys", "list", "--json", "--db", store_url)
    assert listed.exit_code == 0, listed.stderr
    assert secret not in listed.stdout
    assert "secret" not in listed.stdout
    assert "token" not in listed.stdout
    [key] = json.loads(listed.stdout)
    assert key["key_id"] == issued["key_id"]

    as_text = cli("keys", "list", "--db", store_url)
    assert issued["key_id"] in as_text.stdout
    assert "[ci]" in as_text.stdout  # printed as is, not read as markup
    assert secret not in as_text.stdout

    revoked = cli("keys", "revoke", issued["key_id"], "--db", store_url)
    assert revoked.exit_code == 0, revoked.stderr
    assert "revoked" in revoked.stdout
    [key] = json.loads(cli("keys", "list", "--json", "--db", store_url).stdout)
    assert key["active"] is False
    assert key["revoked_at"] is not None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["keys", "create", "--name", "x", "--role", "root"], "role must be one of"),
        (["keys", "create", "--name", "", "--role", "admin"], "name must be"),
        (["keys", "create", "--name", "x", "--role", "admin", "--expires-in", "3w"], "3w"),
        (["keys", "create", "--name", "x", "--role", "admin", "--expires-in", "0d"], "0d"),
        (["keys", "revoke", "aaaaaaaaaaaaaaaa"], "no API key"),
        (["keys", "revoke", "[/]"], "no API key"),
        (["audit", "verify", "--expected-head", "abc"], "expected_head"),
        (["audit", "show", "--limit", "0"], "limit"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(store_url: str, args: list[str], expected: str) -> None:
    result = cli(*args, "--db", store_url)
    assert result.exit_code == 2, result.stdout
    assert expected in result.stderr
    assert result.stderr.startswith("error:")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_bad_store_url_is_exit_2() -> None:
    for group in (["keys", "list"], ["audit", "verify"]):
        result = cli(*group, "--db", "mysql://nope")
        assert result.exit_code == 2
        assert "no engine for scheme 'mysql'" in result.stderr


def test_audit_verify_ok_then_broken(store_url: str) -> None:
    record(store_url, 4)
    ok = cli("audit", "verify", "--db", store_url)
    assert ok.exit_code == 0, ok.stderr
    assert "OK: 4 entries" in ok.stdout
    head = re.search(r"head ([0-9a-f]{64})", ok.stdout)
    assert head is not None

    tamper(store_url, "UPDATE audit_log SET outcome = 'denied' WHERE seq = 2")
    broken = cli("audit", "verify", "--db", store_url)
    assert broken.exit_code == 1
    assert "BROKEN at seq 2" in broken.stdout
    assert "altered" in broken.stdout


def test_audit_verify_against_an_exported_head_finds_a_truncation(store_url: str) -> None:
    record(store_url, 4)
    head = re.search(r"head ([0-9a-f]{64})", cli("audit", "verify", "--db", store_url).stdout)
    assert head is not None
    tamper(store_url, "DELETE FROM audit_log WHERE seq = 4")
    assert cli("audit", "verify", "--db", store_url).exit_code == 0
    result = cli("audit", "verify", "--expected-head", head[1], "--db", store_url)
    assert result.exit_code == 1
    assert "BROKEN at seq 4" in result.stdout


def test_audit_show(store_url: str) -> None:
    record(store_url, 3)
    as_json = cli("audit", "show", "--json", "--limit", "2", "--db", store_url)
    assert as_json.exit_code == 0, as_json.stderr
    entries = json.loads(as_json.stdout)
    assert [e["seq"] for e in entries] == [3, 2]
    assert entries[0]["action"] == "a2"
    assert entries[0]["occurred_at"].endswith("+00:00")
    as_text = cli("audit", "show", "--db", store_url)
    assert as_text.exit_code == 0, as_text.stderr
    assert "key:abc" in as_text.stdout
    assert "a0" in as_text.stdout


def test_exit_codes_of_the_real_command(tmp_path: Path) -> None:
    db = f"duckdb:///{tmp_path}/store.duckdb"
    command = [sys.executable, "-m", "banking_analytics.cli"]
    record(db, 2)
    tamper(db, "DELETE FROM audit_log WHERE seq = 1")
    broken = subprocess.run(
        [*command, "audit", "verify", "--db", db], capture_output=True, text=True, check=False
    )
    assert broken.returncode == 1, broken.stderr
    assert "BROKEN at seq 1" in broken.stdout
    bad = subprocess.run(
        [*command, "keys", "create", "--name", "x", "--role", "root", "--db", db],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr


def test_key_changes_at_the_command_line_are_audited(store_url: str) -> None:
    created = cli(
        "keys", "create", "--name", "ops", "--role", "analyst", "--json", "--db", store_url
    )
    key_id = json.loads(created.stdout)["key_id"]
    assert cli("keys", "revoke", key_id, "--db", store_url).exit_code == 0
    with open_engine(store_url) as engine:
        entries = AuditLog(engine).entries()
        assert AuditLog(engine).verify().ok
    assert [(e.action, e.object_id, e.actor_role) for e in entries] == [
        ("revoke_key", key_id, "admin"),
        ("create_key", key_id, "admin"),
    ]
    assert all(e.actor.startswith("cli:") for e in entries)
