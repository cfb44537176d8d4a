"""docs/stripe.md runs as written: its Python example, then its commands, in order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from banking_analytics import BankingPerformanceAnalytics

DOC = Path(__file__).parents[1] / "docs" / "stripe.md"
DOC_STORE = "duckdb:///analytics.duckdb"


def blocks(language: str) -> list[str]:
    return [b.split("```", 1)[0] for b in DOC.read_text().split(f"```{language}\n")[1:]]


def test_the_example_and_the_commands_run(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (python,) = blocks("python")
    exec(compile(python, "docs/stripe.md", "exec"), {})
    (commands,) = blocks("sh")
    lines = [line for line in commands.splitlines() if line.strip()]
    assert len(lines) == 2
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    outputs = []
    for line in lines:
        assert DOC_STORE in line
        done = subprocess.run(
            ["bash", "-ec", line.replace(DOC_STORE, store_url)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "PATH": path},
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert "1 snapshots stored, 0 duplicate, 0 events ignored, 0 rejected" in outputs[0]
    assert "0 snapshots stored, 1 duplicate, 0 events ignored, 0 rejected" in outputs[1]
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        rows = analytics.engine.query(
            "SELECT subscription_id, user_id, unit_amount, quantity FROM subscription_events"
        ).to_pylist()
    assert rows == [
        {
            "subscription_id": "sub_1Pgc6rB7WZ01zgkW:si_QXk2cT1nB0mSgK",
            "user_id": "user_42",
            "unit_amount": 1500,
            "quantity": 3,
        }
    ]


def test_the_readme_points_here() -> None:
    readme = (DOC.parents[1] / "README.md").read_text()
    assert "docs/stripe.md" in readme
