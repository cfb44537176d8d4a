"""``banking-analytics revenue`` and ``banking-analytics rates load``: money on the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from banking_analytics.cli import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    PeriodOption,
    _open,
    _report,
    app,
    fail,
    out,
    rates_app,
)

if TYPE_CHECKING:
    from banking_analytics.analytics.revenue import MrrSeries

__all__ = ["load", "revenue", "show_mrr"]

#: The widest bar of the MRR chart, in characters.
_BAR = 12


def _money(minor: int, exponent: int) -> str:
    """Minor units as major ones, exactly, with thousands separators."""
    sign = "-" if minor < 0 else ""
    major, cents = divmod(abs(minor), 10**exponent)
    fraction = f".{cents:0{exponent}d}" if exponent else ""
    return f"{sign}{major:,}{fraction}"


def show_mrr(console: Console, series: MrrSeries) -> None:
    """MRR per month with its movements, and a bar per month (the MRR at its end)."""
    from banking_analytics.analytics.revenue._policy import minor_unit_exponent

    c = minor_unit_exponent(series.currency)
    table = Table(
        title=f"MRR in {series.currency} by {series.bucket} ({series.timezone}), with its "
        "movements",
        title_justify="left",
    )
    for name in ("start", "MRR", "new", "expand", "contract", "churn", "react", "paying"):
        table.add_column(name, justify="left" if name == "start" else "right", no_wrap=True)
    table.add_column("", justify="left", no_wrap=True)
    top = max((p.mrr_end for p in series.points), default=0) or 1
    for p in series.points:
        bar = "█" * round(_BAR * p.mrr_end / top)
        table.add_row(
            p.start.strftime("%Y-%m-%d" if series.bucket == "day" else "%Y-%m"),
            _money(p.mrr_end, c),
            _money(p.new, c),
            _money(p.expansion, c),
            _money(p.contraction, c),
            _money(p.churn, c),
            _money(p.reactivation, c),
            f"{p.customers_end:,}",
            f"[cyan]{bar}[/]",
        )
    console.print(table)


@app.command()
def revenue(
    db: DbOption = DEFAULT_DB,
    period: PeriodOption = "365d",
    bucket: Annotated[str, typer.Option(help="day, week or month")] = "month",
    as_json: JsonOption = False,
) -> None:
    """MRR and its movements (new, expansion, contraction, churn, reactivation) per period."""
    _report(db, lambda a: a.revenue.mrr(period, bucket=bucket), show_mrr, as_json)


@rates_app.command("load")
def load(
    path: Annotated[Path, typer.Argument(help="CSV with a header: currency,valid_from,rate")],
    db: DbOption = DEFAULT_DB,
    quote: Annotated[
        str | None, typer.Option(help="Reporting currency the rates convert to (default USD)")
    ] = None,
) -> None:
    """Load exchange rates (exact decimals); a rate already loaded cannot change."""
    from banking_analytics.ingest import RatesError

    with _open(db) as analytics:
        try:
            added = analytics.load_exchange_rates(path, quote=quote)
        except RatesError as exc:
            raise fail(str(exc)) from None
    out.print(f"loaded {added:,} new exchange rate(s)")
