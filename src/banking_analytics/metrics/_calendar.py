"""Where buckets fall, worked out in Python as the engines cut them.

The engines (:meth:`Renderer.bucket`) cut a UTC bucket of fixed width, and a
15-minute one in any timezone, by flooring the epoch; any other bucket, and a
calendar month, quarter or year in every timezone, by truncating the wall-clock
time: ``date_trunc(unit, t AT TIME ZONE zone) AT TIME ZONE zone``. A month's
bucket starts at local midnight on the 1st, converted to UTC. Gap filling, the
span of each bucket (per-day rates), period comparison and the bucket-count
limit all use the starts computed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from banking_analytics.metrics._window import Bucket, TimeWindow

__all__ = ["bucket_count", "bucket_end", "bucket_keys", "bucket_starts", "matching_buckets"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: How many months a calendar bucket spans.
_MONTHS = {Bucket.MONTH: 1, Bucket.QUARTER: 3, Bucket.YEAR: 12}


def bucket_keys(window: TimeWindow, bucket: Bucket, timezone: str) -> Sequence[int]:
    """The start of every bucket that overlaps the window, in microseconds since the epoch:
    from the bucket holding the window's start to the last that starts before its end.
    """
    if _counted_from_epoch(bucket, timezone):  # integers all the way (hourly: 2,160)
        width = bucket.width // _MICROSECOND
        first = (window.start - _EPOCH) // _MICROSECOND // width * width
        return range(first, (window.end - _EPOCH) // _MICROSECOND, width)
    zone = ZoneInfo(timezone)
    keys: list[int] = []
    # Walked on the wall clock, one bucket at a time: a day of 23 or 25 hours, or a
    # month of 28 to 31 days, ends where the next one starts.
    local = _local_start(window.start, bucket, zone)
    while (start := _instant(local, zone)) < window.end:
        key = (start - _EPOCH) // _MICROSECOND
        # An hour the clocks skip starts where the next does: the engines never cut it.
        if not keys or keys[-1] != key:
            keys.append(key)
        local = _next(local, bucket)
    return keys


def bucket_starts(window: TimeWindow, bucket: Bucket, timezone: str) -> list[datetime]:
    """The start of every bucket that overlaps the window, as the engines truncate time
    (see :func:`bucket_keys`)."""
    return [_EPOCH + key * _MICROSECOND for key in bucket_keys(window, bucket, timezone)]


def bucket_end(start: datetime, bucket: Bucket, timezone: str) -> datetime:
    """Where the bucket starting at ``start`` ends: the next bucket's start.

    A fixed-width UTC bucket ends ``width`` later; any other ends at the next
    wall-clock unit in ``timezone`` (a London day in late March lasts 23 hours,
    March 2026 in London 30 days and 23 hours).
    """
    if _counted_from_epoch(bucket, timezone):
        return start + bucket.width
    zone = ZoneInfo(timezone)
    return _instant(_next(_local_start(start, bucket, zone), bucket), zone)


def bucket_count(window: TimeWindow, bucket: Bucket, timezone: str) -> float:
    """How many buckets cut the window: calendar ones counted (five years hold 61 months),
    fixed-width ones by dividing the window's length (a minute series can be too long to
    list: that is what the count is checked for)."""
    if bucket.is_calendar:
        return len(bucket_keys(window, bucket, timezone))
    return window.length / bucket.width


def matching_buckets(
    earlier: TimeWindow, window: TimeWindow, bucket: Bucket, timezone: str
) -> dict[datetime, datetime]:
    """Each bucket start of ``earlier`` with the start of the bucket in the same place in
    ``window``, counted from the end: the last with the last (for period comparison).

    Shifting by the windows' distance would do for UTC hours and days, but not for months
    of different lengths nor across a change of clocks. Counted from the end, a window of
    whole months, April to June, puts them beside January to March: the 91 days before it
    also hold 31 December, the one bucket left without a match.
    """
    return dict(
        zip(
            reversed(bucket_starts(earlier, bucket, timezone)),
            reversed(bucket_starts(window, bucket, timezone)),
            strict=False,
        )
    )


def _counted_from_epoch(bucket: Bucket, timezone: str) -> bool:
    """Whether buckets are a fixed width from the epoch, as the engines floor it: every UTC
    bucket but the week (which starts on a Monday) and the calendar ones, and the 15-minute
    bucket in every zone (every offset in use is a whole number of quarter hours)."""
    if bucket is Bucket.QUARTER_HOUR:
        return True
    return timezone == "UTC" and bucket is not Bucket.WEEK and not bucket.is_calendar


def _local_start(at: datetime, bucket: Bucket, zone: ZoneInfo) -> datetime:
    """The wall-clock start (naive) of the bucket holding ``at`` in ``zone``."""
    local = at.astimezone(zone).replace(tzinfo=None, fold=0)
    match bucket:
        case Bucket.MINUTE:
            return local.replace(second=0, microsecond=0)
        case Bucket.QUARTER_HOUR:
            return local.replace(minute=local.minute - local.minute % 15, second=0, microsecond=0)
        case Bucket.HOUR:
            return local.replace(minute=0, second=0, microsecond=0)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if bucket is Bucket.DAY:
        return midnight
    if bucket is Bucket.WEEK:
        return midnight - timedelta(days=midnight.weekday())
    months = _MONTHS[bucket]
    return midnight.replace(month=(midnight.month - 1) // months * months + 1, day=1)


def _next(local: datetime, bucket: Bucket) -> datetime:
    """The wall-clock start (naive) of the bucket after the one starting at ``local``."""
    if not bucket.is_calendar:
        return local + bucket.width
    month = local.year * 12 + local.month - 1 + _MONTHS[bucket]
    return local.replace(year=month // 12, month=month % 12 + 1)


def _instant(local: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time in ``zone``, as both engines read it: a time the
    clocks pass twice is the later instant, a time they skip is read at the offset before
    the change (which also gives the later of the two readings)."""
    return max(
        local.replace(tzinfo=zone, fold=0).astimezone(UTC),
        local.replace(tzinfo=zone, fold=1).astimezone(UTC),
    )
