"""An independent computation of the revenue ledger, written from the contract alone.

It follows /work/REVENUE-CONTRACT.md (the definitions in docs/revenue.md) in plain,
step-by-step Python over a pandas frame of stored ``subscription_events``, a loop per
subscription and per customer, with exact integer and ``Fraction`` arithmetic. It shares
no code with ``banking_analytics.analytics.revenue``: the tests hold the two to each other.

1. A subscription's snapshots in order (occurred_at, received_at, event_id), duplicates
   (same event id) dropped.
2. Each snapshot's price: gross = unit_amount x quantity; percent off = floor(gross x
   percent / 100 + 0.5); net = max(gross - percent off - amount off, 0); gross again from
   the discount's end (repeating: its start + months; once: its start + one billing
   period; the start is the first event carrying the same discount).
3. Its MRR: floor((2 x price x N + D) / (2 x D)), then converted at the rate of the date of
   the subscription's first event, floor(mrr x rate x 10^(e_rep - e_cur) + 1/2).
4. Its contribution: that MRR while the status is active or past_due, else 0; the policies
   move the cut (period end of a cancellation, past-due grace).
5. A customer's MRR is the sum over their subscriptions; each instant it changes is one
   movement: new, reactivation, expansion, contraction or churn.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pandas as pd

#: Statuses whose subscriptions count in MRR.
PAYING = frozenset({"active", "past_due"})
#: Minor-unit exponents that are not 2.
EXPONENTS = {"JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3}
#: mrr = price x N / (D x interval_count): (N, D) per interval.
NORMALISATION = {"month": (1, 1), "year": (1, 12), "week": (52, 12), "day": (365, 12)}
KINDS = ("new", "expansion", "contraction", "churn", "reactivation")
#: Later than any event: "never".
NEVER = pd.Timestamp("2262-01-01", tz="UTC")


@dataclass(frozen=True)
class Policy:
    """The four vendor-dependent settings, and the reporting currency with its rates.

    ``rates``: (currency, valid_from, rate) with rate the reporting currency's major units
    per major unit of the currency, a decimal string (taken exactly).
    """

    churn_recognition: str = "cancellation"
    past_due_grace_days: int | None = None
    count_joined_and_churned: bool = False
    free_customers_are_customers: bool = False
    currency: str = "USD"
    rates: tuple[tuple[str, date, str], ...] = ()


class MissingRateError(ValueError):
    """No rate for a currency on a date."""


# -- one subscription -----------------------------------------------------------------------


def _utc(value: Any) -> pd.Timestamp | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _number(value: Any) -> Any:
    """A stored number, or None for a missing one (pandas gives NaN or NA)."""
    if value is None or pd.isna(value):
        return None
    return value


def monthly(price: int, interval: str, interval_count: int) -> int:
    """A price per billing period as MRR in minor units, rounded half up."""
    n, d = NORMALISATION[interval]
    d *= interval_count
    return (2 * price * n + d) // (2 * d)


def add_months(at: pd.Timestamp, months: int) -> pd.Timestamp:
    """``at`` plus whole calendar months, the day clipped to the month's last."""
    index = at.year * 12 + at.month - 1 + months
    year, month = divmod(index, 12)
    last = pd.Timestamp(year=year, month=month + 1, day=1).days_in_month
    return at.replace(year=year, month=month + 1, day=min(at.day, last))


def one_period(at: pd.Timestamp, interval: str, interval_count: int) -> pd.Timestamp:
    """``at`` plus one billing period (calendar months and years; 7-day weeks)."""
    if interval == "month":
        return add_months(at, interval_count)
    if interval == "year":
        return add_months(at, 12 * interval_count)
    return at + timedelta(days=(7 if interval == "week" else 1) * interval_count)


def rate_for(policy: Policy, currency: str, on: date) -> Fraction:
    if currency == policy.currency:
        return Fraction(1)
    valid = [(since, rate) for c, since, rate in policy.rates if c == currency and since <= on]
    if valid:
        return Fraction(Decimal(max(valid)[1]))
    raise MissingRateError(f"no rate for {currency} on {on.isoformat()}")


def converted(mrr: int, factor: Fraction) -> int:
    return math.floor(mrr * factor + Fraction(1, 2))


@dataclass
class Snapshot:
    at: pd.Timestamp
    status: str
    net: int  # MRR with the discount, reporting currency
    gross: int  # MRR without it
    discount_end: pd.Timestamp  # NEVER when it lasts (or there is none)
    cut: pd.Timestamp  # from here the snapshot contributes 0


def ordered(events: pd.DataFrame) -> pd.DataFrame:
    """Events without duplicate ids, in ledger order."""
    frame = events.drop_duplicates("event_id").copy()
    for column in ("occurred_at", "received_at", "period_end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["event_id"] = frame["event_id"].astype(str).str.lower()
    return frame.sort_values(["occurred_at", "received_at", "event_id"], kind="stable")


def snapshots(records: Sequence[dict[str, Any]], policy: Policy) -> list[Snapshot]:
    """The snapshots of one subscription, its events in ledger order."""
    first = records[0]["occurred_at"]
    starts: dict[tuple[Any, ...], pd.Timestamp] = {}
    for r in records:
        key = _discount_key(r)
        if key is not None and key not in starts:
            starts[key] = r["occurred_at"]
    out: list[Snapshot] = []
    run_start: pd.Timestamp | None = None
    for r in records:
        at: pd.Timestamp = r["occurred_at"]
        interval, count = str(r["interval"]), int(_number(r["interval_count"]) or 1)
        gross_price = int(r["unit_amount"]) * int(_number(r["quantity"]) or 1)
        percent = _number(r["discount_percent"])
        amount = _number(r["discount_amount"])
        percent_off = 0 if percent is None else math.floor(gross_price * float(percent) / 100 + 0.5)
        net_price = max(gross_price - percent_off - int(amount or 0), 0)
        key = _discount_key(r)
        discount_end = NEVER
        if key is not None:
            duration = key[2]
            if duration == "repeating" and key[3] is not None:
                discount_end = add_months(starts[key], int(key[3]))
            elif duration == "once":
                discount_end = one_period(starts[key], interval, count)
        factor = rate_for(policy, str(r["currency"]), first.date()) * Fraction(10) ** (
            EXPONENTS.get(policy.currency, 2) - EXPONENTS.get(str(r["currency"]), 2)
        )
        status = str(r["status"])
        run_start = (run_start or at) if status == "past_due" else None
        out.append(
            Snapshot(
                at=at,
                status=status,
                net=converted(monthly(net_price, interval, count), factor),
                gross=converted(monthly(gross_price, interval, count), factor),
                discount_end=discount_end,
                cut=_cut(r, status, at, run_start, policy),
            )
        )
    return out


def _discount_key(r: dict[str, Any]) -> tuple[Any, ...] | None:
    percent, amount = _number(r["discount_percent"]), _number(r["discount_amount"])
    if percent is None and amount is None:
        return None
    duration = _number(r["discount_duration"]) or "forever"
    months = _number(r["discount_months"])
    return (
        None if percent is None else float(percent),
        None if amount is None else int(amount),
        str(duration),
        None if months is None else int(months),
    )


def _cut(
    r: dict[str, Any],
    status: str,
    at: pd.Timestamp,
    run_start: pd.Timestamp | None,
    policy: Policy,
) -> pd.Timestamp:
    """When the snapshot stops contributing (its own time: never contributes)."""
    if status == "active":
        return NEVER
    if status == "past_due":
        if policy.past_due_grace_days is None:
            return NEVER
        assert run_start is not None
        return run_start + timedelta(days=policy.past_due_grace_days)
    period_end = _utc(r["period_end"])
    if (
        policy.churn_recognition == "period_end"
        and status in ("canceled", "unpaid")
        and period_end is not None
        and period_end > at
    ):
        return period_end
    return at


def subscription_steps(
    records: Sequence[dict[str, Any]], policy: Policy
) -> list[tuple[pd.Timestamp, int]]:
    """The change points (at, mrr) of one subscription, in order; a later point at the same
    instant overrides an earlier one."""
    snaps = snapshots(records, policy)
    points: list[tuple[pd.Timestamp, int]] = []
    for i, snap in enumerate(snaps):
        until = snaps[i + 1].at if i + 1 < len(snaps) else NEVER

        def value(t: pd.Timestamp, snap: Snapshot = snap) -> int:
            if t >= snap.cut:
                return 0
            return snap.gross if t >= snap.discount_end else snap.net

        inside = sorted({t for t in (snap.discount_end, snap.cut) if snap.at < t < until})
        points += [(t, value(t)) for t in (snap.at, *inside)]
    return points


# -- customers ------------------------------------------------------------------------------


@dataclass
class Ledger:
    """Every customer's MRR changes: (at, mrr_before, mrr_after, kind), in time order."""

    changes: dict[str, list[tuple[pd.Timestamp, int, int, str]]] = field(default_factory=dict)
    #: Per customer, (at, whether a subscription of theirs is active or past due) from
    #: each instant that changes it: a free customer (free plan, 100% off) is one at MRR 0.
    holding: dict[str, list[tuple[pd.Timestamp, bool]]] = field(default_factory=dict)

    def mrr_before(self, customer: str, t: pd.Timestamp) -> int:
        """The customer's MRR after every change strictly before ``t``."""
        history = self.changes[customer]
        i = bisect.bisect_left([c[0] for c in history], t)
        return history[i - 1][2] if i else 0

    def counted(self, customer: str, t: pd.Timestamp, policy: Policy) -> bool:
        """Whether the customer counts in customer numbers at ``t`` (after changes before
        it): paying, or with the policy, holding a subscription active or past due."""
        if self.mrr_before(customer, t) > 0:
            return True
        history = self.holding[customer]
        i = bisect.bisect_left([c[0] for c in history], t)
        return policy.free_customers_are_customers and i > 0 and history[i - 1][1]

    def frame(self) -> pd.DataFrame:
        rows = [
            {
                "customer": customer,
                "at": at,
                "mrr_before": before,
                "mrr_after": after,
                "kind": kind,
                "amount": after - before,
            }
            for customer, history in self.changes.items()
            for at, before, after, kind in history
        ]
        columns = ["customer", "at", "mrr_before", "mrr_after", "kind", "amount"]
        frame = pd.DataFrame(rows, columns=columns)
        return frame.sort_values(["at", "customer"], kind="stable").reset_index(drop=True)


def classify(before: int, after: int, paid_before: bool) -> str:
    if before == 0:
        return "reactivation" if paid_before else "new"
    if after == 0:
        return "churn"
    return "expansion" if after > before else "contraction"


def ledger(events: pd.DataFrame, policy: Policy = Policy()) -> Ledger:
    """Every customer's MRR movements from stored subscription events."""
    subscriptions: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in ordered(events).to_dict("records"):
        key = (str(record["user_id"]), str(record["subscription_id"]))
        subscriptions.setdefault(key, []).append(record)
    steps: dict[str, list[list[tuple[pd.Timestamp, int]]]] = {}
    statuses: dict[str, list[list[tuple[pd.Timestamp, int]]]] = {}
    for (customer, _), records in sorted(subscriptions.items()):
        steps.setdefault(customer, []).append(subscription_steps(records, policy))
        held = [(r["occurred_at"], int(r["status"] in PAYING)) for r in records]
        statuses.setdefault(customer, []).append(held)
    result = Ledger()
    for customer, subscriptions in steps.items():
        history: list[tuple[pd.Timestamp, int, int, str]] = []
        instants = sorted({at for points in subscriptions for at, _ in points})
        total, paid = 0, False
        for t in instants:
            now = sum(_value_at(points, t) for points in subscriptions)
            if now != total:
                history.append((t, total, now, classify(total, now, paid)))
                paid, total = paid or now > 0, now
        result.changes[customer] = history
        holding: list[tuple[pd.Timestamp, bool]] = []
        for t in sorted({at for held in statuses[customer] for at, _ in held}):
            now_held = any(_value_at(held, t) for held in statuses[customer])
            if not holding or holding[-1][1] != now_held:
                holding.append((t, now_held))
        result.holding[customer] = holding
    return result


def _value_at(points: Sequence[tuple[pd.Timestamp, int]], t: pd.Timestamp) -> int:
    """The mrr of the last change point at or before ``t`` (0 before the first)."""
    value = 0
    for at, mrr in points:
        if at > t:
            break
        value = mrr
    return value


def movements(
    events: pd.DataFrame, start: datetime, end: datetime, policy: Policy = Policy()
) -> pd.DataFrame:
    """The customer changes with start <= at < end."""
    changes = ledger(events, policy).frame()
    inside = (changes["at"] >= pd.Timestamp(start)) & (changes["at"] < pd.Timestamp(end))
    return changes[inside].reset_index(drop=True)


# -- periods --------------------------------------------------------------------------------


def bucket_bounds(
    start: datetime, end: datetime, bucket: str, timezone: str
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Buckets [s, e) cut on the wall clock of ``timezone`` (weeks from Monday), from the one
    holding ``start`` to the last starting before ``end``, as UTC instants."""
    local = pd.Timestamp(start).tz_convert(timezone).tz_localize(None).normalize()
    if bucket == "week":
        local -= pd.Timedelta(days=local.weekday())
    elif bucket == "month":
        local = local.replace(day=1)
    step = {"day": pd.DateOffset(days=1), "week": pd.DateOffset(days=7)}.get(
        bucket, pd.DateOffset(months=1)
    )
    bounds = []
    while (s := local.tz_localize(timezone).tz_convert("UTC")) < pd.Timestamp(end):
        local += step
        bounds.append((s, local.tz_localize(timezone).tz_convert("UTC")))
    return bounds


@dataclass(frozen=True)
class Point:
    """One bucket's figures (the fields of MrrPoint), and the sums behind NRR and GRR."""

    start: pd.Timestamp
    end: pd.Timestamp
    mrr_start: int
    new: int
    expansion: int
    contraction: int
    churn: int
    reactivation: int
    net_new: int
    mrr_end: int
    customers_start: int
    customers_end: int
    new_customers: int
    reactivated_customers: int
    churned_customers: int
    #: Over the customers paying at start: their MRR at end, and min(at end, at start).
    retained: int
    retained_gross: int

    def customer_churn_rate(self) -> Fraction | None:
        return _ratio(self.churned_customers, self.customers_start)

    def gross_mrr_churn_rate(self) -> Fraction | None:
        return _ratio(-(self.churn + self.contraction), self.mrr_start)

    def net_mrr_churn_rate(self) -> Fraction | None:
        lost = self.churn + self.contraction + self.expansion + self.reactivation
        return _ratio(-lost, self.mrr_start)

    def nrr(self) -> Fraction | None:
        return _ratio(self.retained, self.mrr_start)

    def grr(self) -> Fraction | None:
        return _ratio(self.retained_gross, self.mrr_start)

    def quick_ratio(self) -> Fraction | None:
        return _ratio(
            self.new + self.expansion + self.reactivation, -(self.churn + self.contraction)
        )

    def arr(self) -> int:
        return 12 * self.mrr_end

    def arpa(self) -> Fraction | None:
        return _ratio(self.mrr_end, self.customers_end)

    def metrics(self) -> dict[str, Fraction | int | None]:
        """The revenue metrics of the period, by the names the ledger gives them."""
        churn_rate = self.customer_churn_rate()
        return {
            "mrr": self.mrr_end,
            "arr": self.arr(),
            "net_new_mrr": self.net_new,
            "new_mrr": self.new,
            "expansion_mrr": self.expansion,
            "contraction_mrr": self.contraction,
            "churned_mrr": self.churn,
            "reactivation_mrr": self.reactivation,
            "paying_customers": self.customers_end,
            "arpa": half_up(self.arpa()),
            "customer_churn_rate": churn_rate,
            "customer_retention": None if churn_rate is None else 1 - churn_rate,
            "gross_mrr_churn_rate": self.gross_mrr_churn_rate(),
            "net_mrr_churn_rate": self.net_mrr_churn_rate(),
            "nrr": self.nrr(),
            "grr": self.grr(),
            "quick_ratio": self.quick_ratio(),
        }

    def figures(self) -> dict[str, Any]:
        """The MrrPoint fields."""
        return {k: v for k, v in self.__dict__.items() if k not in ("retained", "retained_gross")}


def _ratio(numerator: int, denominator: int) -> Fraction | None:
    return Fraction(numerator, denominator) if denominator else None


def points(
    book: Ledger, bounds: Iterable[tuple[pd.Timestamp, pd.Timestamp]], policy: Policy = Policy()
) -> list[Point]:
    """The figures of each period [s, e) of a ledger."""
    out = []
    for s, e in bounds:
        sums = dict.fromkeys(KINDS, 0)
        movers: dict[str, set[str]] = {k: set() for k in KINDS}
        mrr_start = mrr_end = paying_start = paying_end = retained = retained_gross = 0
        churned: set[str] = set()
        for customer, history in book.changes.items():
            at_start, at_end = book.mrr_before(customer, s), book.mrr_before(customer, e)
            mrr_start += at_start
            mrr_end += at_end
            paying_start += book.counted(customer, s, policy)
            paying_end += book.counted(customer, e, policy)
            if at_start > 0:
                retained += at_end
                retained_gross += min(at_end, at_start)
            for at, before, after, kind in history:
                if s <= at < e:
                    sums[kind] += after - before
                    movers[kind].add(customer)
            if customer in movers["churn"] and (policy.count_joined_and_churned or at_start > 0):
                churned.add(customer)
        out.append(
            Point(
                start=s,
                end=e,
                mrr_start=mrr_start,
                **sums,
                net_new=sum(sums.values()),
                mrr_end=mrr_end,
                customers_start=paying_start,
                customers_end=paying_end,
                new_customers=len(movers["new"]),
                reactivated_customers=len(movers["reactivation"]),
                churned_customers=len(churned),
                retained=retained,
                retained_gross=retained_gross,
            )
        )
    return out


def series(
    events: pd.DataFrame,
    start: datetime,
    end: datetime,
    bucket: str,
    timezone: str = "UTC",
    policy: Policy = Policy(),
) -> list[Point]:
    """The MRR series of stored subscription events, per bucket of the window."""
    return points(ledger(events, policy), bucket_bounds(start, end, bucket, timezone), policy)


def ltv(months: Sequence[Point], i: int) -> int | None:
    """ARPA of month ``i`` ÷ the mean customer churn rate of the six months before it (those
    with customers at their start), in whole minor units; undefined (None) when that mean
    is 0 or there is none."""
    rates = [r for p in months[max(i - 6, 0) : i] if (r := p.customer_churn_rate()) is not None]
    arpa = months[i].arpa()
    if arpa is None or not rates or sum(rates) == 0:
        return None
    return half_up(arpa / (sum(rates) / len(rates)))


def half_up(value: Fraction | None) -> int | None:
    """Money in whole minor units, rounded half up."""
    return None if value is None else math.floor(value + Fraction(1, 2))
