"""Terminal renderings of the analyses: what a person reads after a command."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from banking_analytics.analytics import AggregatorCut, ConnectionPerformance, InstitutionCut

__all__ = ["show_health", "show_performance"]

_STATE_STYLE = {"HEALTHY": "green", "DEGRADED": "yellow", "DOWN": "bold red", "UNKNOWN": "dim"}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


def show_performance(console: Console, perf: ConnectionPerformance, top: int = 10) -> None:
    """Connection health over a period: the headline, the latency and the busiest cuts."""
    period = perf.time_period
    rate = perf.success_rate
    latency = perf.latency
    console.print(
        f"\n[bold]Connection performance[/] {period.label} "
        f"({period.start.isoformat()} .. {period.end.isoformat()}): {perf.attempts or 0:,} attempts"
    )
    breakdown = rate.breakdown
    console.print(
        f"  success rate {_pct(rate.average)} of {rate.sample_size or 0:,} "
        f"(institution errors {_pct(breakdown.error_institution)}, aggregator errors "
        f"{_pct(breakdown.error_aggregator)}); previous period {_pct(rate.previous_period)}"
    )
    excluded = ", ".join(f"{k.replace('_', ' ')} {v or 0:,}" for k, v in rate.excluded.items())
    console.print(f"  not counted: {excluded}")
    conversion = perf.link_conversion
    console.print(
        f"  latency mean {_ms(latency.average_ms)}, p50 {_ms(latency.p50_ms)}, "
        f"p95 {_ms(latency.p95_ms)}, p99 {_ms(latency.p99_ms)}; link conversion "
        f"{_pct(conversion.rate)} of {conversion.sessions or 0:,} sessions"
    )
    cuts: dict[str, list[AggregatorCut] | list[InstitutionCut]] = {
        "aggregator": perf.by_aggregator,
        "institution": perf.by_institution,
    }
    for dimension, rows in cuts.items():
        table = Table(title=f"by {dimension} (busiest {top})", title_justify="left")
        for column in (dimension, "attempts", "success rate", "institution err", "p95"):
            table.add_column(column, justify="left" if column == dimension else "right")
        for row in rows[:top]:
            table.add_row(
                _institution(str(row[dimension]), row["institution_name"])
                if dimension == "institution"
                else str(row[dimension]),
                f"{row.attempts or 0:,}",
                _pct(row.success_rate),
                _pct(row.error_institution),
                _ms(row.latency_p95_ms),
            )
        console.print(table)


def _institution(institution_id: str, name: str | None) -> Text:
    """An institution as a person reads it: its catalogue name and id, as plain text
    (a name is data: its brackets are not markup)."""
    return Text(f"{name} ({institution_id})" if name else institution_id)


def show_health(console: Console, health: dict[str, Any], limit: int = 20) -> None:
    """Institution products that are not healthy (worst first), and the totals per state."""
    products = health["products"]
    counts: dict[str, int] = {}
    for entry in products:
        counts[entry["state"]] = counts.get(entry["state"], 0) + 1
    totals = ", ".join(f"{state} {counts.get(state, 0)}" for state in _STATE_STYLE)
    console.print(f"\n[bold]Institution health[/] ({len(products)} products): {totals}")
    unwell = [e for e in products if e["state"] in ("DOWN", "DEGRADED")][:limit]
    if not unwell:
        return
    table = Table(title_justify="left")
    for column in ("institution", "aggregator", "product", "state", "since", "window rate"):
        table.add_column(column)
    for entry in unwell:
        style = _STATE_STYLE[entry["state"]]
        table.add_row(
            _institution(entry["institution_id"], entry["institution_name"]),
            entry["aggregator"],
            entry["product"],
            f"[{style}]{entry['state']}[/]",
            entry["last_state_change"] or "—",
            _pct(entry["window_success_rate"]),
        )
    console.print(table)
