"""``keys`` and ``audit``: manage API keys and check the audit log of a store.

Bad input ends with a one-line message on stderr and exit code 2; a broken
audit chain with exit code 1, so scripts can tell the two apart. Text from the
store (names, actors, details) is printed as is, never read as Rich markup.
"""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from banking_analytics.cli import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    announce_store,
    err,
    fail,
    out,
)
from banking_analytics.store import Engine, StoreUnavailableError, StoreURLError, open_engine

if TYPE_CHECKING:
    from banking_analytics.access import ApiKey

# The access package (its audit queries compile with sqlglot; tokens need PyJWT) is
# imported by the commands that use it, not whenever the CLI starts.

__all__ = ["audit_app", "keys_app"]

CHAIN_BROKEN = 1
_LIFETIME = re.compile(r"(\d{1,5})([hd])")

keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
audit_app = typer.Typer(
    help="The audit log: verify its hash chain, show recent entries.", no_args_is_help=True
)


def _audit_cli(engine: Engine, action: str, key_id: str, details: dict[str, Any]) -> None:
    """Key changes made at the command line are admin actions too: audit them."""
    from banking_analytics.access import AuditLog

    AuditLog(engine).record(
        actor=f"cli:{getpass.getuser()}",
        actor_role="admin",
        action=action,
        outcome="ok",
        object_type="api_key",
        object_id=key_id,
        client_ip=None,
        details=details,
    )


@contextmanager
def _store(db: str) -> Iterator[Engine]:
    try:
        engine = open_engine(db)
    except (StoreURLError, StoreUnavailableError) as exc:
        raise fail(escape(str(exc))) from None
    with engine:
        yield engine
    announce_store(engine.url)


def _lifetime(text: str) -> timedelta:
    match = _LIFETIME.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise fail(escape(f"--expires-in {text!r} is not understood; use <n>d or <n>h, e.g. 90d"))
    count = int(match[1])
    return timedelta(days=count) if match[2] == "d" else timedelta(hours=count)


def _when(at: datetime | None, never: str = "-") -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else never


def _day(at: datetime | None, never: str = "-") -> str:
    return at.strftime("%Y-%m-%d %H:%M") if at else never


def _as_json(value: Any) -> str:
    def iso(v: object) -> str:
        if isinstance(v, datetime):
            return v.isoformat()
        raise TypeError(f"{type(v).__name__} is not JSON")

    return json.dumps(value, default=iso)


def _key_record(key: ApiKey, now: datetime) -> dict[str, Any]:
    return {**asdict(key), "active": key.active(now)}


def _status(key: ApiKey, now: datetime) -> str:
    if key.revoked_at is not None:
        return "[red]revoked[/]"
    return "active" if key.active(now) else "[yellow]expired[/]"


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Option(help="What the key is for, e.g. 'app servers'")],
    role: Annotated[str, typer.Option(help="admin, analyst or ingest")],
    expires_in: Annotated[
        str | None, typer.Option(help="Lifetime, <n>d or <n>h, e.g. 90d (default: no expiry)")
    ] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Create a key and print its token; the token is shown this once, never again."""
    from banking_analytics.access import KeyStore

    expires_at = None if expires_in is None else datetime.now(UTC) + _lifetime(expires_in)
    with _store(db) as engine:
        try:
            issued = KeyStore(engine).create(name, role, expires_at=expires_at, created_by="cli")
        except ValueError as exc:
            raise fail(escape(str(exc))) from None
        _audit_cli(engine, "create_key", issued.key.key_id, {"role": role, "name": name})
    key = issued.key
    if as_json:
        out.print_json(_as_json({**_key_record(key, key.created_at), "token": issued.secret}))
    else:
        out.print(
            f"API key {key.key_id} ({key.role}, expires {_when(key.expires_at, 'never')}):",
            highlight=False,
        )
        out.print(issued.secret, markup=False, highlight=False, soft_wrap=True)
    err.print(
        "[bold yellow]warning:[/] this token is not shown again and cannot be recovered; "
        "store it now",
        highlight=False,
        soft_wrap=True,
    )


@keys_app.command("list")
def list_keys(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """Every key with its role and state; never a secret."""
    from banking_analytics.access import KeyStore

    with _store(db) as engine:
        keys = KeyStore(engine).list()
    now = datetime.now(UTC)
    if as_json:
        out.print_json(_as_json([_key_record(key, now) for key in keys]))
        return
    table = Table(title=f"{len(keys)} API keys", title_justify="left")
    table.add_column("key id", no_wrap=True)
    for heading in ("name", "role", "state", "created (UTC)", "expires (UTC)", "last used (UTC)"):
        table.add_column(heading)
    table.add_column("by")
    for key in keys:
        table.add_row(
            key.key_id,
            escape(key.name),
            key.role,
            _status(key, now),
            _day(key.created_at),
            _day(key.expires_at, "never"),
            _day(key.last_used_at, "never"),
            escape(key.created_by or "-"),
        )
    out.print(table)


@keys_app.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (from 'keys list')")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Revoke a key for good; the API refuses it within seconds."""
    from banking_analytics.access import KeyNotFoundError, KeyStore

    with _store(db) as engine:
        try:
            key = KeyStore(engine).revoke(key_id)
        except KeyNotFoundError as exc:
            raise fail(escape(str(exc))) from None
        _audit_cli(engine, "revoke_key", key.key_id, {})
    out.print(
        f"API key {key.key_id} ({escape(key.name)}) revoked at {_when(key.revoked_at)}",
        highlight=False,
    )


@audit_app.command("verify")
def verify_audit(
    expected_head: Annotated[
        str | None, typer.Option(help="A head hash printed by an earlier verify, kept elsewhere")
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Check the audit log's hash chain; exit 1 at the first broken link."""
    from banking_analytics.access import AuditLog

    with _store(db) as engine:
        try:
            report = AuditLog(engine).verify(expected_head=expected_head)
        except ValueError as exc:
            raise fail(escape(str(exc))) from None
    if report.ok:
        out.print(
            f"audit log OK: {report.checked:,} entries, head {report.head_hash or '(none)'}",
            highlight=False,
            soft_wrap=True,
        )
        return
    out.print(
        f"audit log BROKEN at seq {report.first_broken_seq}: {report.reason} "
        f"({report.checked:,} entries verified before it)",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(CHAIN_BROKEN)


@audit_app.command("show")
def show_audit(
    limit: Annotated[int, typer.Option(help="How many of the newest entries")] = 20,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """The newest audit entries, newest first."""
    from banking_analytics.access import AuditLog

    with _store(db) as engine:
        try:
            entries = AuditLog(engine).entries(limit=limit)
        except ValueError as exc:
            raise fail(escape(str(exc))) from None
    if as_json:
        out.print_json(_as_json([asdict(entry) for entry in entries]))
        return
    table = Table(title=f"newest {len(entries)} audit entries", title_justify="left")
    for heading in ("seq", "time", "actor", "role", "action", "object", "ip", "outcome", "details"):
        table.add_column(heading)
    for e in entries:
        target = f"{e.object_type}:{e.object_id}" if e.object_type else (e.object_id or "-")
        cells = (
            e.actor,
            e.actor_role,
            e.action,
            target,
            e.client_ip or "-",
            e.outcome,
            json.dumps(e.details, sort_keys=True, ensure_ascii=False) if e.details else "",
        )
        table.add_row(str(e.seq), e.occurred_at.strftime("%Y-%m-%d %H:%M:%S"), *map(escape, cells))
    out.print(table)
