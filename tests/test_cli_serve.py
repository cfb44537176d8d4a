"""``serve`` and ``demo``: settings refused with one line and exit 2; the demo's summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from banking_analytics.cli import app


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"BA_JWT_HS256_SECRET": "changeme"}, "BA_JWT_HS256_SECRET"),
        ({"BA_JWT_HS256_SECRET": "short"}, "at least 32 bytes"),
        ({"BA_RATE_LIMIT_PER_SECOND": "-1"}, "BA_RATE_LIMIT_PER_SECOND"),
    ],
)
def test_serve_refuses_bad_settings_in_one_line(
    tmp_path: Path, env: dict[str, str], names: str
) -> None:
    result = CliRunner().invoke(
        app, ["serve", "--db", f"duckdb:///{tmp_path}/s.duckdb"], env={**env, "COLUMNS": "200"}
    )
    assert result.exit_code == 2
    assert names in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_demo_without_serving_simulates_and_summarises(tmp_path: Path) -> None:
    db = f"duckdb:///{tmp_path}/demo.duckdb"
    result = CliRunner().invoke(
        app,
        ["demo", "--db", db, "--users", "300", "--days", "3", "--no-serve"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "success rate" in result.stdout.lower()
    assert (tmp_path / "demo.truth.json").exists()
