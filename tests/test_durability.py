"""Acknowledged means durable: SIGKILL mid-stream loses no acknowledged event."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from banking_analytics import BankingPerformanceAnalytics

CHILD = Path(__file__).with_name("durability_child.py")


@pytest.mark.parametrize("acks_before_kill", [3_000, 12_000])
def test_sigkill_loses_no_acknowledged_event(
    store_url: str, acks_before_kill: int, tmp_path: Path
) -> None:
    acknowledged: list[str] = []
    log = tmp_path / "child.log"
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, str(CHILD), store_url],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as child,
    ):
        assert child.stdout is not None
        try:
            for line in child.stdout:
                acknowledged.append(line.strip())
                if len(acknowledged) >= acks_before_kill:
                    break
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        # Lines written before the kill but not read yet were acknowledged too.
        acknowledged += [line.strip() for line in child.stdout.read().splitlines() if line]
    assert child.returncode == -signal.SIGKILL
    assert len(acknowledged) >= acks_before_kill, log.read_text()

    with BankingPerformanceAnalytics.open(store_url) as analytics:
        stored = analytics.engine.query(
            "SELECT CAST(event_id AS VARCHAR) AS id, count(*) AS n FROM behavior_events GROUP BY 1"
        ).to_pydict()
    copies = dict(zip(stored["id"], stored["n"], strict=True))
    missing = [i for i in acknowledged if i not in copies]
    assert not missing, f"{len(missing)} acknowledged events lost"
    assert all(n == 1 for n in copies.values()), "an event was stored twice"
    assert len(set(acknowledged)) == len(acknowledged)
