"""The filter bar's values and the buckets a dashboard's series are cut by, hand-worked."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from banking_analytics.metrics import Bucket, TimeWindow
from banking_analytics.web._filters import FilterError, Filters
from banking_analytics.web._performance_data import choose_bucket, holds_sample, main_sample

END = datetime(2026, 11, 20, 12, tzinfo=UTC)


def window(hours: float) -> TimeWindow:
    return TimeWindow(END - timedelta(hours=hours), END)


@pytest.mark.parametrize(
    ("hours", "sample", "bucket"),
    [
        # 24 h: 96 quarter-hours or 24 hours fit (a day is one point: too few).
        (24, 5760, Bucket.QUARTER_HOUR),  # 5760 / 96 = 60 per point: three times 20
        (24, 5759, Bucket.HOUR),  # 5759 / 96 = 59.99: not; 5759 / 24 = 240: hours
        (24, 1440, Bucket.HOUR),  # 1440 / 24 = 60 exactly
        (24, 314, Bucket.HOUR),  # too few for any: the coarsest that fits, hours
        # 7 days: hours (168) and days (7) fit; quarter-hours (672) are too many.
        (7 * 24, 4159, Bucket.DAY),  # 4159 / 168 = 24.8 per hour (< 60); 594 per day
        (7 * 24, 10080, Bucket.HOUR),  # 10080 / 168 = 60
        # 90 days: days (90) and weeks (12.9) fit.
        (90 * 24, 5000, Bucket.WEEK),  # 5000 / 90 = 55.6 per day; 389 per week
        (90 * 24, 5400, Bucket.DAY),  # 5400 / 90 = 60 per day
        (90 * 24, None, Bucket.WEEK),  # no events: the coarsest
        (1830 * 24, 10**6, Bucket.WEEK),  # 261 weeks: none fits; weeks all the same
    ],
)
def test_the_bucket_is_the_finest_whose_points_hold_three_times_the_minimum_sample(
    hours: float, sample: int | None, bucket: Bucket
) -> None:
    assert choose_bucket(window(hours), sample) == bucket


def test_a_bucket_holds_the_sample_at_20_per_point_on_average() -> None:
    assert holds_sample(window(24), Bucket.HOUR, 480)  # 480 / 24 = 20
    assert not holds_sample(window(24), Bucket.HOUR, 479)
    assert not holds_sample(window(24), Bucket.HOUR, None)


@pytest.mark.parametrize(
    ("samples", "main"),
    [
        # 3876 of 4667 is 83 %; with 357 it is 90.7 %: the main series are those two.
        ([301, 3876, 62, 357, 71], 357),
        ([576, 37, 37, 7, 6], 37),  # 576 / 663 = 86.9 %; + 37 = 92.5 %
        ([900, 100], 900),  # 900 / 1000 is 90 % exactly: the busiest alone
        ([10], 10),
        ([], 0),
        ([0, 0], 0),
    ],
)
def test_the_main_series_hold_90_percent_of_the_sample(samples: list[int], main: int) -> None:
    assert main_sample(samples) == main


def test_a_custom_range_is_whole_days_in_the_timezone() -> None:
    filters = Filters.read(
        {
            "period": "custom",
            "start": "2026-11-01",
            "end": "2026-11-07",
            "timezone": "Europe/Berlin",
        }
    )
    assert (filters.start, filters.end) == (date(2026, 11, 1), date(2026, 11, 7))
    chosen = filters.window()
    # Berlin is UTC+1 in November: from midnight on the 1st to midnight after the 7th.
    assert chosen.start == datetime(2026, 10, 31, 23, tzinfo=UTC)
    assert chosen.end == datetime(2026, 11, 7, 23, tzinfo=UTC)


def test_the_url_holds_only_what_differs_from_the_defaults() -> None:
    filters = Filters.read(
        {"period": "7d", "aggregator": "plaid", "feature": "", "timezone": "UTC"}
    )
    assert filters.query_string() == "period=7d&aggregator=plaid"
    assert Filters.read({}).query_string() == ""
    assert (
        filters.query_string(institution="ins_3") == "period=7d&institution=ins_3&aggregator=plaid"
    )
    assert filters.metric_filters() == {"aggregator": "plaid"}


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"period": "2w"}, "period: '2w' is not one of"),
        ({"period": "custom", "start": "2026-11-02"}, "end: a custom range needs"),
        ({"period": "custom", "start": "2026-11-02", "end": "2026-11-01"}, "ends before it starts"),
        ({"period": "custom", "start": "2016-01-01", "end": "2026-11-01"}, "at most 1830 days"),
        ({"feature": "teleportation"}, "not a banking feature"),
        ({"institution": "ins 3"}, "not an institution id"),
        ({"timezone": "Mars/Olympus"}, "not an IANA timezone"),
    ],
)
def test_bad_values_are_refused_naming_the_parameter(query: dict[str, str], words: str) -> None:
    with pytest.raises(FilterError, match=words):
        Filters.read(query)
