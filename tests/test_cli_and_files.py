"""The CLI end to end (real subprocesses) and the three file formats."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.events import Kind
from banking_analytics.store import ALL_TABLES, Column, TableDef, open_engine

CLI = [sys.executable, "-m", "banking_analytics.cli"]
NOW = datetime.now(UTC).replace(microsecond=0)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, check=False)


def metric(i: int) -> dict[str, object]:
    return {
        "event_type": "performance_metric",
        "metric_type": "connection_latency",
        "feature": "account_linking",
        "value": 1000.0 + i,
        "unit": "ms",
        "occurred_at": (NOW - timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
    }


def test_ingest_jsonl_reports_bad_lines_and_exits_2(tmp_path: Path, store_url: str) -> None:
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(metric(i)) for i in range(5)]
    lines[3] = json.dumps({**metric(3), "feature": "warp_drive"})
    path.write_text("\n".join(lines) + "\n")
    result = run("ingest", str(path), "--db", store_url)
    assert result.returncode == 2
    assert "5 events" in result.stdout
    assert "4 accepted" in result.stdout
    assert f"{path}:line 4: feature: must be one of" in result.stderr
    assert "Traceback" not in result.stderr
    info = run("info", "--db", store_url)
    assert info.returncode == 0
    assert "quarantined (rejected) events: 1" in info.stdout


def test_clean_file_exits_0_and_a_second_load_is_all_duplicates(
    tmp_path: Path, store_url: str
) -> None:
    path = tmp_path / "events.jsonl"
    ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(10)]
    path.write_text("\n".join(json.dumps({**metric(i), "event_id": ids[i]}) for i in range(10)))
    assert run("ingest", str(path), "--db", store_url).returncode == 0
    again = run("ingest", str(path), "--db", store_url)
    assert again.returncode == 0
    assert "0 accepted, 10 duplicate" in again.stdout


def test_bad_invocations_are_one_line_errors_with_exit_2(tmp_path: Path) -> None:
    for args, expected in [
        (["ingest", str(tmp_path / "missing.jsonl")], "no such file"),
        (["ingest", str(tmp_path / "x.txt")], "cannot tell the format"),
        (["info", "--db", "mysql://nope"], "no engine for scheme 'mysql'"),
        (["info", "--db", "relative/path.duckdb"], "has no scheme"),
    ]:
        (tmp_path / "x.txt").write_text("hello")
        result = (
            run(*args, "--db", f"duckdb:///{tmp_path}/s.duckdb")
            if args[0] == "ingest"
            else run(*args)
        )
        assert result.returncode == 2, (args, result.stderr)
        assert expected in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_csv_rows_are_reported_by_line_number(
    analytics: BankingPerformanceAnalytics, tmp_path: Path
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "event_type,metric_type,feature,value,occurred_at\n"
        f"performance_metric,connection_latency,account_linking,1200.5,{NOW.isoformat()}\n"
        f"performance_metric,connection_latency,account_linking,fast,{NOW.isoformat()}\n"
        f"performance_metric,error_rate,bill_reminders,0.02,{NOW.isoformat()}\n"
    )
    report = analytics.ingest_file(path)
    assert (report.accepted, report.rejected) == (2, 1)
    ((line, reason),) = report.rejections
    assert line == 3
    assert reason.startswith("value: expected")
    values = analytics.engine.query("SELECT value FROM performance_metric_events ORDER BY value")
    assert values["value"].to_pylist() == [0.02, 1200.5]


def test_parquet_rows_are_typed_and_checked(
    analytics: BankingPerformanceAnalytics, tmp_path: Path
) -> None:
    table = pa.table({
        "event_type": ["performance_metric"] * 3,
        "metric_type": ["connection_latency", "error_rate", "connection_latency"],
        "feature": ["account_linking", "bill_reminders", "account_linking"],
        "value": [1200.0, 0.02, -1.0e400],
        "occurred_at": pa.array([NOW] * 3, pa.timestamp("ms", tz="UTC")),
    })  # fmt: skip
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    report = analytics.ingest_file(path)
    assert (report.accepted, report.rejected) == (2, 1)
    assert report.rejections == [(3, "value: must be a finite number")]


def test_migration_adds_new_optional_columns_and_keeps_rows(store_url: str) -> None:
    with BankingPerformanceAnalytics.open(store_url) as a:
        a.record_performance_metric("connection_latency", "account_linking", 5.0)
    grown = TableDef(
        "performance_metric_events",
        (*ALL_TABLES[0].columns, Column("region", Kind.IDENTIFIER)),
        time_column="occurred_at",
    )
    with open_engine(store_url) as engine:
        engine.migrate([grown])
        assert engine.table_columns("performance_metric_events")[-1] == "region"
        rows = engine.query("SELECT value, region FROM performance_metric_events").to_pylist()
        assert rows == [{"value": 5.0, "region": None}]
