"""Exchange rates the user supplies, so that revenue in any currency is reported in one.

A rate says one major unit of ``currency`` is worth ``rate`` major units of the
reporting currency (``quote``) from ``valid_from`` (a date, midnight UTC) until
the currency's next rate. Rates are exact decimals with at most 9 places, stored
as integers (``rate x 10^9``), so that converted money is exact. Rows are only
added: loading a rate again with the same value changes nothing; with another
value it is refused (the revenue already reported would silently change).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pyarrow as pa

from banking_analytics.events import Kind, arrow_type
from banking_analytics.store import EXCHANGE_RATES, Engine
from banking_analytics.store._sql import column_list
from banking_analytics.store._sql import quote as quote_name

__all__ = [
    "RATE_SCALE",
    "ExchangeRate",
    "RatesError",
    "parse_rates",
    "rated_currencies",
    "read_rates_csv",
    "store_rates",
]

#: Rates are stored as ``rate x RATE_SCALE``.
RATE_SCALE = 10**9


class RatesError(ValueError):
    """Rates that cannot be loaded; the message names the row and the field."""


@dataclass(frozen=True, slots=True)
class ExchangeRate:
    currency: str
    quote: str
    valid_from: date
    rate: Decimal

    @property
    def scaled(self) -> int:
        return int(self.rate * RATE_SCALE)


def _currency(value: object, where: str, name: str) -> str:
    text = str(value or "").strip()
    if len(text) != 3 or not text.isascii() or not text.isalpha() or not text.isupper():
        raise RatesError(f"{where}: {name} {text!r} is not an ISO 4217 code (3 upper-case letters)")
    return text


def parse_rates(rows: Iterable[Mapping[str, object]], quote: str) -> list[ExchangeRate]:
    """Rates from rows with ``currency``, ``valid_from`` (YYYY-MM-DD) and ``rate``; a row's
    own ``quote`` wins over the default ``quote``."""
    rates: list[ExchangeRate] = []
    for number, row in enumerate(rows, start=1):
        where = f"row {number}"
        currency = _currency(row.get("currency"), where, "currency")
        to = _currency(row.get("quote") or quote, where, "quote")
        if currency == to:
            raise RatesError(f"{where}: a rate from {currency} to itself")
        try:
            valid_from = date.fromisoformat(str(row.get("valid_from", "")).strip())
        except ValueError:
            raise RatesError(f"{where}: valid_from must be a date (YYYY-MM-DD)") from None
        try:
            rate = Decimal(str(row.get("rate", "")).strip())
        except InvalidOperation:
            raise RatesError(f"{where}: rate {row.get('rate')!r} is not a number") from None
        if not rate.is_finite() or rate <= 0:
            raise RatesError(f"{where}: rate must be a positive number")
        if (rate * RATE_SCALE) != (rate * RATE_SCALE).to_integral_value():
            raise RatesError(f"{where}: rate {rate} has more than 9 decimal places")
        if rate * RATE_SCALE >= 2**63:
            raise RatesError(f"{where}: rate {rate} is too large")
        rates.append(ExchangeRate(currency, to, valid_from, rate))
    return rates


def read_rates_csv(path: Path, quote: str) -> list[ExchangeRate]:
    """Rates from a CSV file with a header row: currency,valid_from,rate[,quote]."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"currency", "valid_from", "rate"} - set(reader.fieldnames or ())
            if missing:
                raise RatesError(f"{path}: the header lacks {', '.join(sorted(missing))}")
            try:
                return parse_rates(reader, quote)
            except RatesError as error:
                # Row n of the data is line n + 1 of the file (after the header).
                raise RatesError(f"{path}: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RatesError(f"{path}: cannot be read ({error})") from None


def store_rates(engine: Engine, rates: list[ExchangeRate], now: datetime) -> int:
    """Add the rates not stored yet; how many were added. A rate stored with another value
    for the same currency, quote and date is refused, and nothing is added."""
    with engine.begin() as tx:
        tx.lock(EXCHANGE_RATES)
        stored = tx.execute(_select_rates())
        known = {
            (c, q, v.date()): r
            for c, q, v, r in zip(
                stored["currency"].to_pylist(),
                stored["quote"].to_pylist(),
                stored["valid_from"].to_pylist(),
                stored["rate_e9"].to_pylist(),
                strict=True,
            )
        }
        fresh: dict[tuple[str, str, date], int] = {}
        for rate in rates:
            key = (rate.currency, rate.quote, rate.valid_from)
            earlier = known.get(key, fresh.get(key))
            if earlier is not None and earlier != rate.scaled:
                raise RatesError(
                    f"{rate.currency}->{rate.quote} on {rate.valid_from} is already "
                    f"{Decimal(earlier) / RATE_SCALE}; a rate is not changed once loaded"
                )
            if earlier is None:
                fresh[key] = rate.scaled
        if fresh:
            timestamp = arrow_type(Kind.TIMESTAMP)
            rows = pa.table(
                {
                    "currency": pa.array([k[0] for k in fresh], pa.string()),
                    "quote": pa.array([k[1] for k in fresh], pa.string()),
                    "valid_from": pa.array(
                        [datetime.combine(k[2], time(), UTC) for k in fresh], timestamp
                    ),
                    "rate_e9": pa.array(list(fresh.values()), pa.int64()),
                    "loaded_at": pa.array([now] * len(fresh), timestamp),
                }
            )
            tx.append(EXCHANGE_RATES, rows)
    return len(fresh)


def _select_rates() -> str:
    """Every stored rate (text both engines read alike: ingestion imports no SQL compiler)."""
    return (
        f"SELECT {column_list(EXCHANGE_RATES.column_names)} FROM {quote_name(EXCHANGE_RATES.name)}"
    )


def rated_currencies(engine: Engine, quote: str) -> frozenset[str]:
    """The currencies with at least one rate to ``quote`` (and ``quote`` itself)."""
    stored = engine.query(_select_rates())
    found = {
        c
        for c, q in zip(stored["currency"].to_pylist(), stored["quote"].to_pylist(), strict=True)
        if q == quote
    }
    return frozenset({quote, *found})
