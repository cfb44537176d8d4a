"""``quarantine list`` and ``quarantine show``: the rejected events of a store, and why.

Text from the store (reasons, raw payloads) is printed as is, never read as Rich markup.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from banking_analytics.cli import DEFAULT_DB, DbOption, JsonOption, _open, fail, out, print_json

__all__ = ["quarantine_app"]

quarantine_app = typer.Typer(
    help="Rejected events: list them by reason and time, show one in full.",
    no_args_is_help=True,
)
#: A reason is cut to this many characters in the list (``show`` prints it whole).
_REASON_WIDTH = 120
WhenOption = Annotated[
    datetime | None,
    typer.Option(
        formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
        help="UTC unless an offset is given",
    ),
]


def _utc(when: datetime | None) -> datetime | None:
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)


@quarantine_app.command("list")
def list_quarantine(
    reason: Annotated[
        str | None, typer.Option(help="Only reasons containing this text (any case)")
    ] = None,
    since: WhenOption = None,
    until: WhenOption = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many")] = 50,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """The newest rejected events (received in [--since, --until)), newest first."""
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since >= until:
        raise fail(f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})")
    with _open(db) as analytics:
        rows = analytics.quarantine(limit, reason=reason, since=since, until=until)
    if as_json:
        print_json([{**row, "errors": json.loads(row["errors"])} for row in rows])
        return
    table = Table(title=f"{len(rows)} quarantined events, newest first", title_justify="left")
    for heading in ("id", "received (UTC)", "source", "position", "event type", "reason"):
        table.add_column(heading, overflow="fold", no_wrap=heading in ("id", "received (UTC)"))
    for row in rows:
        cut = row["reason"] if len(row["reason"]) <= _REASON_WIDTH else row["reason"][:119] + "…"
        table.add_row(
            str(row["quarantine_id"]),
            row["received_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            row["source"],
            "-" if row["position"] is None else str(row["position"]),
            row["event_type"] or "-",
            cut,
        )
    out.print(table, markup=False, highlight=False)


@quarantine_app.command("show")
def show_quarantined(
    quarantine_id: Annotated[str, typer.Argument(help="The id `quarantine list` shows")],
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """One rejected event in full: where it came from, every error, its raw payload."""
    with _open(db) as analytics:
        rows = analytics.quarantine(1, quarantine_id=quarantine_id.strip())
        if not rows:  # said before the store is named, so the error is the one line
            raise fail(f"no quarantined event {quarantine_id!r} (see: quarantine list)")
    row = {**rows[0], "errors": json.loads(rows[0]["errors"])}
    if as_json:
        print_json(row)
        return
    for name in ("quarantine_id", "received_at", "source", "position", "event_type", "event_id"):
        out.print(f"{name}: {row[name]}", markup=False, highlight=False)
    out.print("errors:", markup=False, highlight=False)
    for error in row["errors"]:
        where = error.get("field") or "(payload)"
        out.print(f"  {where}: {error['message']} [{error['code']}]", markup=False, highlight=False)
    out.print(f"raw ({row['raw_bytes']} bytes):", markup=False, highlight=False)
    out.print(row["raw"] or "", markup=False, highlight=False, soft_wrap=True)
