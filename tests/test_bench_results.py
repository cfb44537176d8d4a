"""``python -m benchmarks.run --only NAME`` replaces that benchmark's section of the results
file and keeps the others' as they were, each saying when it was measured."""

from __future__ import annotations

from datetime import UTC, datetime

from benchmarks.run import BENCHMARKS, RESULTS, BenchmarkResult, kept_sections, report


def test_a_partial_run_replaces_its_section_and_keeps_the_others() -> None:
    before = kept_sections(RESULTS.read_text())
    assert {"web", "revenue", "dashboard"} <= set(before)
    failed = BenchmarkResult(BENCHMARKS["web"], error="RuntimeError: planted")
    started = datetime(2027, 1, 2, 3, 4, tzinfo=UTC)
    text = report([failed], ["--only", "web"], False, started, 1.0, 0.5, before)
    after = kept_sections(text)
    assert list(after) == [name for name in BENCHMARKS if name in after]
    assert set(after) == set(before)
    assert {name: after[name] for name in after if name != "web"} == {
        name: before[name] for name in before if name != "web"
    }
    assert "_Measured 2027-01-02 03:04 UTC" in after["web"]
    assert "**Failed:** RuntimeError: planted" in after["web"]
    # Every kept section still says when it was measured.
    assert all("_Measured " in section for section in after.values())
