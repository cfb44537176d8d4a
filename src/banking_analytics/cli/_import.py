"""``banking-analytics import``: events exported from other systems, mapped to ours.

``import stripe-events FILE.jsonl`` reads one Stripe event (JSON object) per line,
maps each as the webhook does (:func:`~banking_analytics.ingest.map_stripe_event`),
and stores the snapshots through the same ingestion path. No signature is checked:
the file is the operator's own export. Exit code 2 when the file cannot be read or
any line was rejected (the rest is stored, and a second run stores nothing twice).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

import orjson
import typer

from banking_analytics.cli import BAD_INPUT, DEFAULT_DB, DbOption, _open, _progress, err, fail, out
from banking_analytics.ingest import EventStatus, StripeEventError, map_stripe_event

if TYPE_CHECKING:
    from banking_analytics._facade import BankingPerformanceAnalytics

__all__ = ["import_app"]

import_app = typer.Typer(
    help="Load events exported from other systems (mapped to ours).", no_args_is_help=True
)
#: Snapshots stored per transaction.
_BATCH_EVENTS = 2_000


@dataclass
class _Tally:
    """What an import did, line by line."""

    events: int = 0
    stored: int = 0
    duplicate: int = 0
    rejected: int = 0
    ignored: Counter[str] = field(default_factory=Counter)
    #: (line, reason) of each rejection.
    problems: list[tuple[int, str]] = field(default_factory=list)

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        self.problems.append((line, reason))


def _store(
    analytics: BankingPerformanceAnalytics,
    pending: list[tuple[int, dict[str, Any]]],
    tally: _Tally,
) -> None:
    """Store the snapshots gathered so far, counting what became of each."""
    if not pending:
        return
    results = analytics.ingest([event for _, event in pending], source="stripe-import")
    for (line, _), result in zip(pending, results, strict=True):
        if result.status is EventStatus.ACCEPTED:
            tally.stored += 1
        elif result.status is EventStatus.DUPLICATE:
            tally.duplicate += 1
        else:
            tally.reject(line, result.reason or "rejected")
    pending.clear()


def _read(path: Path) -> tuple[int, BinaryIO]:
    try:
        return path.stat().st_size, path.open("rb")
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror}") from None


@import_app.command("stripe-events")
def stripe_events(
    path: Annotated[Path, typer.Argument(help="Stripe events, one JSON object per line")],
    db: DbOption = DEFAULT_DB,
    show: Annotated[int, typer.Option(help="How many rejected lines to list")] = 20,
) -> None:
    """Load Stripe events (an export, one event per line) as subscription snapshots.

    Events of types that are not mapped are counted as ignored, with the reason.
    Exits with 2 if the file cannot be read or any line was rejected.
    """
    size, lines = _read(path)
    tally = _Tally()
    started = time.perf_counter()
    with lines, _open(db) as analytics, _progress() as progress:
        task = progress.add_task(f"importing {path.name}", total=size or None)
        pending: list[tuple[int, dict[str, Any]]] = []
        for number, raw in enumerate(lines, 1):
            progress.advance(task, len(raw))
            if not raw.strip():
                continue
            tally.events += 1
            try:
                mapping = map_stripe_event(orjson.loads(raw))
            except orjson.JSONDecodeError as exc:
                tally.reject(number, f"not JSON: {exc}")
                continue
            except StripeEventError as exc:
                tally.reject(number, str(exc))
                continue
            if mapping.ignored is not None:
                tally.ignored[f"{mapping.stripe_type}: {mapping.ignored}"] += 1
            pending += [(number, event) for event in mapping.events]
            if len(pending) >= _BATCH_EVENTS:
                _store(analytics, pending, tally)
        _store(analytics, pending, tally)
    elapsed = time.perf_counter() - started
    out.print(
        f"{tally.events:,} Stripe events in {elapsed:.2f} s: {tally.stored:,} snapshots stored, "
        f"{tally.duplicate:,} duplicate, {sum(tally.ignored.values()):,} events ignored, "
        f"{tally.rejected:,} rejected",
        highlight=False,
        soft_wrap=True,
    )
    for reason, count in tally.ignored.most_common():
        out.print(f"  ignored {count:,} x {reason}", highlight=False, soft_wrap=True)
    for line, reason in sorted(tally.problems)[:show]:
        err.print(f"{path}:line {line}: {reason}", highlight=False, soft_wrap=True)
    if len(tally.problems) > show:
        err.print(f"... and {len(tally.problems) - show:,} more")
    if tally.rejected:
        raise typer.Exit(BAD_INPUT)
