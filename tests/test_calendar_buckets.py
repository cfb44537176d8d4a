"""Calendar buckets (month, quarter, year) in a timezone, asked of the engines and checked
against boundaries worked out by hand from each zone's rules, on every engine."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api_fixtures import LiveAPI
from banking_analytics import BankingPerformanceAnalytics, EventStatus
from banking_analytics.metrics import (
    Bucket,
    MetricQuery,
    QueryError,
    TimeWindow,
    parse_time_period,
)

#: Local midnight on the 1st of these months starts a bucket...
FIRSTS = ["2024-01", "2024-10", "2024-12"] + [f"2025-{m:02}" for m in range(1, 13)] + ["2026-01"]
#: ...at this UTC offset, worked out by hand from each zone's rules. London keeps BST
#: (+1) from the last Sunday of March to the last Sunday of October (27 October 2024;
#: 30 March to 26 October 2025). New York keeps EDT (-4) from the second Sunday of March
#: to the first Sunday of November, at 2:00 (3 November 2024; 9 March to 2 November
#: 2025: midnight on 1 November 2025 is still EDT). Adelaide keeps ACDT (+10:30) from
#: the first Sunday of October to the first Sunday of April (6 October 2024 to 6 April
#: 2025; from 5 October 2025) and ACST (+9:30) between. Kolkata is +5:30 all year.
OFFSETS = {
    "UTC": ["+00:00"] * 16,
    "Europe/London": ["+00:00", "+01:00", "+00:00"]
    + ["+00:00"] * 3
    + ["+01:00"] * 7
    + ["+00:00"] * 3,
    "America/New_York": ["-05:00", "-04:00", "-05:00"]
    + ["-05:00"] * 3
    + ["-04:00"] * 8
    + ["-05:00"] * 2,
    "Asia/Kolkata": ["+05:30"] * 16,
    "Australia/Adelaide": ["+10:30", "+09:30", "+10:30"]
    + ["+10:30"] * 4
    + ["+09:30"] * 6
    + ["+10:30"] * 3,
}
ZONES = list(OFFSETS)
#: From the middle of December 2024 to the middle of January 2026 (in every zone).
WINDOW = TimeWindow(datetime(2024, 12, 15, tzinfo=UTC), datetime(2026, 1, 15, tzinfo=UTC))


def first_of(month: str, zone: str) -> datetime:
    """The instant local midnight on the 1st of ``month`` (``YYYY-MM``) starts, from the table."""
    offset = OFFSETS[zone][FIRSTS.index(month)]
    return datetime.fromisoformat(f"{month}-01T00:00:00{offset}").astimezone(UTC)


def month_before(month: str) -> str:
    year, number = int(month[:4]), int(month[5:])
    return f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02}"


def bucket_month(month: str, bucket: str) -> str:
    """The first month of the month's bucket: itself, its quarter's first, or January."""
    number = int(month[5:])
    first = {"month": number, "quarter": (number - 1) // 3 * 3 + 1, "year": 1}[bucket]
    return f"{month[:4]}-{first:02}"


def attempt(at: datetime, label: str, **fields: Any) -> dict[str, Any]:
    """A connection attempt at ``at``, its institution named after ``label``."""
    return {
        "event_type": "connection_attempt",
        "event_id": str(uuid.uuid4()),
        "occurred_at": at.isoformat(),
        "user_id": "u1",
        "attempt_id": f"a_{label}",
        "aggregator": "plaid",
        "institution_id": f"ins_{label}",
        "feature": "account_linking",
        "flow": "new",
        "started_at": (at - timedelta(seconds=5)).isoformat(),
        "outcome": "success",
        **fields,
    }


def ingest(analytics: BankingPerformanceAnalytics, events: list[dict[str, Any]]) -> None:
    results = analytics.ingest(events)
    assert {r.status for r in results} == {EventStatus.ACCEPTED}, [r.reason for r in results]


def boundary_events(zone: str) -> list[dict[str, Any]]:
    """One attempt a microsecond before and one exactly at each local 1st of January 2025
    to January 2026, labelled ``<month>_before`` / ``<month>_at``."""
    events = []
    for month in FIRSTS[FIRSTS.index("2025-01") :]:
        start = first_of(month, zone)
        label = month.replace("-", "_")
        events.append(attempt(start - timedelta(microseconds=1), f"{label}_before"))
        events.append(attempt(start, f"{label}_at"))
    return events


@pytest.mark.parametrize("zone", ZONES)
def test_events_either_side_of_a_local_first_land_in_their_bucket(
    analytics: BankingPerformanceAnalytics, zone: str
) -> None:
    ingest(analytics, boundary_events(zone))
    for bucket in ("month", "quarter", "year"):
        expected = set()
        for month in FIRSTS[FIRSTS.index("2025-01") :]:
            label = month.replace("-", "_")
            before = bucket_month(month_before(month), bucket)
            expected.add((first_of(before, zone), f"ins_{label}_before"))
            expected.add((first_of(bucket_month(month, bucket), zone), f"ins_{label}_at"))
        query = MetricQuery.build(
            ["connection_attempts"],
            WINDOW,
            dimensions=["institution"],
            bucket=bucket,
            timezone=zone,
        )
        rows = analytics.metrics.run(query, fill_gaps=False).rows
        got = {(r.bucket, r.dimensions["institution"]) for r in rows}
        assert got == expected, (zone, bucket, sorted(got ^ expected))
        assert all(r["connection_attempts"] == 1 for r in rows)


@pytest.mark.parametrize("zone", ZONES)
def test_gap_filling_lists_every_month_of_the_window(
    analytics: BankingPerformanceAnalytics, zone: str
) -> None:
    ingest(analytics, boundary_events(zone))
    # Two events: one at the start of April, one just before September's.
    only = {"institution": ["ins_2025_04_at", "ins_2025_09_before"]}
    rows = analytics.query_metrics(
        ["connection_attempts", "connection_success_rate"],
        WINDOW,
        bucket="month",
        timezone=zone,
        filters=only,
    ).rows
    months = FIRSTS[FIRSTS.index("2024-12") :]
    assert [r.bucket for r in rows] == [first_of(m, zone) for m in months]
    counts = dict(zip(months, (r["connection_attempts"] for r in rows), strict=True))
    assert counts == {m: 1 if m in ("2025-04", "2025-08") else 0 for m in months}
    assert all(r["connection_success_rate"] is None for r in rows)  # below the minimum sample
    quarters = analytics.query_metrics(
        ["connection_attempts"], WINDOW, bucket="quarter", timezone=zone, filters=only
    ).rows
    assert [(r.bucket, r["connection_attempts"]) for r in quarters] == [
        (first_of("2024-10", zone), 0),
        (first_of("2025-01", zone), 0),
        (first_of("2025-04", zone), 1),
        (first_of("2025-07", zone), 1),
        (first_of("2025-10", zone), 0),
        (first_of("2026-01", zone), 0),
    ]


def sync_run(at: datetime) -> dict[str, Any]:
    return {
        "event_type": "sync_run",
        "event_id": str(uuid.uuid4()),
        "occurred_at": at.isoformat(),
        "user_id": "u1",
        "connection_id": "c1",
        "aggregator": "plaid",
        "institution_id": "ins_1",
        "feature": "transaction_sync",
        "trigger": "scheduled",
        "started_at": (at - timedelta(seconds=30)).isoformat(),
        "outcome": "success",
    }


def test_a_per_day_rate_divides_by_the_days_of_its_month(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """London's March 2025 lasts 30 days and 23 hours (BST from 30 March)."""
    window = TimeWindow(datetime(2025, 2, 15, tzinfo=UTC), datetime(2025, 4, 15, tzinfo=UTC))
    february = [datetime(2025, 2, 16, tzinfo=UTC) + timedelta(days=i) for i in range(7)]
    march = [datetime(2025, 3, 1, 12, tzinfo=UTC) + timedelta(days=i) for i in range(31)]
    april = [datetime(2025, 4, 1, 12, tzinfo=UTC) + timedelta(days=i) for i in range(10)]
    ingest(analytics, [sync_run(at) for at in february + march + april])
    rows = analytics.query_metrics(
        ["sync_frequency_per_day", "sync_successes"],
        window,
        bucket="month",
        timezone="Europe/London",
    ).rows
    assert [r.bucket for r in rows] == [
        datetime(2025, 2, 1, tzinfo=UTC),
        datetime(2025, 3, 1, tzinfo=UTC),
        datetime(2025, 3, 31, 23, tzinfo=UTC),
    ]
    assert [r["sync_successes"] for r in rows] == [7, 31, 10]
    # Successes per connection (one) per day of the window the bucket covers:
    # 15 February to 1 March: 14 days; March: 30 days 23 hours; 31 March 23:00 to
    # 15 April 00:00: 14 days 1 hour.
    assert [r["sync_frequency_per_day"] for r in rows] == [
        pytest.approx(7 / 14),
        pytest.approx(31 / (30 + 23 / 24)),
        pytest.approx(10 / (14 + 1 / 24)),
    ]


def test_compare_puts_each_month_beside_the_month_in_the_same_place_before(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """April to June 2025 (91 days) against the 91 days before: 31 December 2024 to
    1 April, whose last three months are January to March (December's one day has no
    match). Month k of 2025 has k events, at noon from the 2nd."""
    events = [attempt(datetime(2024, 12, 31, 12, tzinfo=UTC), "dec")]
    for month in range(1, 7):
        events += [
            attempt(datetime(2025, month, 2 + day, 12, tzinfo=UTC), f"{month}_{day}")
            for day in range(month)
        ]
    ingest(analytics, events)
    window = TimeWindow(datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC))
    rows = analytics.query_metrics(
        ["connection_attempts"], window, bucket="month", compare=True
    ).rows
    assert [
        (r.bucket, r["connection_attempts"], r.previous["connection_attempts"].value)
        for r in rows
        if r.previous is not None
    ] == [
        (datetime(2025, 4, 1, tzinfo=UTC), 4, 1),
        (datetime(2025, 5, 1, tzinfo=UTC), 5, 2),
        (datetime(2025, 6, 1, tzinfo=UTC), 6, 3),
    ]


def test_a_calendar_bucket_is_counted_not_divided_by_a_width() -> None:
    longest = parse_time_period("1830d", now=datetime(2026, 1, 1, tzinfo=UTC))
    for bucket in (Bucket.MONTH, Bucket.QUARTER, Bucket.YEAR):
        assert bucket.is_calendar
        with pytest.raises(TypeError, match="no fixed width"):
            _ = bucket.width
        MetricQuery.build(["connection_attempts"], longest, bucket=bucket, timezone="Asia/Kolkata")
    with pytest.raises(QueryError, match="more than 10000 buckets"):
        MetricQuery.build(["connection_attempts"], parse_time_period("7d"), bucket="minute")
    with pytest.raises(QueryError, match="month, quarter, year"):
        MetricQuery.build(["connection_attempts"], parse_time_period("7d"), bucket="fortnight")


def test_the_api_takes_calendar_buckets(live_api: LiveAPI) -> None:
    zone = "Australia/Adelaide"
    events = boundary_events(zone)
    answer = live_api.client.post(
        "/api/banking-analytics/events/batch",
        json={"events": events},
        headers=live_api.as_key("ingest"),
    )
    assert answer.status_code == 200, answer.text
    response = live_api.client.post(
        "/api/banking-analytics/metrics/query",
        json={
            "metrics": ["connection_attempts"],
            "start": WINDOW.start.isoformat(),
            "end": WINDOW.end.isoformat(),
            "bucket": "quarter",
            "timezone": zone,
        },
        headers=live_api.as_key("analyst"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["bucket"] == "quarter"
    # A quarter of 2025 holds the events at its three months' firsts and those just
    # before the next three firsts; the quarters either side hold one each.
    got = [
        (datetime.fromisoformat(r["bucket"]), r["values"]["connection_attempts"]["value"])
        for r in body["rows"]
    ]
    assert got == [
        (first_of("2024-10", zone), 1),
        (first_of("2025-01", zone), 6),
        (first_of("2025-04", zone), 6),
        (first_of("2025-07", zone), 6),
        (first_of("2025-10", zone), 6),
        (first_of("2026-01", zone), 1),
    ]
