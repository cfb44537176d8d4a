"""Every command that opens a store names it once, by its absolute path, on stderr.

``duckdb:///tmp/x.duckdb`` is a relative path (three slashes, as SQLAlchemy reads
file URLs): it names ./tmp/x.duckdb, and the command says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.duckdb


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "banking_analytics.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [["info"], ["keys", "list"], ["audit", "verify"], ["health", "--json"]],
)
def test_a_relative_url_is_named_by_its_absolute_path(tmp_path: Path, command: list[str]) -> None:
    done = run(tmp_path, *command, "--db", "duckdb:///tmp/x.duckdb")
    assert done.returncode == 0, done.stderr
    absolute = tmp_path / "tmp" / "x.duckdb"
    assert absolute.exists()
    shown = [line for line in done.stderr.splitlines() if line.startswith("store: ")]
    assert shown == [f"store: duckdb:///{absolute}"]  # four slashes: an absolute path
    assert shown[0].startswith("store: duckdb:////")
    if "--json" in command:
        json.loads(done.stdout)  # stdout stays JSON


def test_the_four_slash_form_names_the_same_file(tmp_path: Path) -> None:
    relative = run(tmp_path, "keys", "create", "--name", "a", "--role", "analyst",
                   "--db", "duckdb:///tmp/x.duckdb")  # fmt: skip
    assert relative.returncode == 0, relative.stderr
    absolute = run(tmp_path / "..", "keys", "list", "--json",
                   "--db", f"duckdb:///{tmp_path}/tmp/x.duckdb")  # fmt: skip
    assert absolute.returncode == 0, absolute.stderr
    assert [key["name"] for key in json.loads(absolute.stdout)] == ["a"]
    assert f"store: duckdb:///{tmp_path}/tmp/x.duckdb" in absolute.stderr


def test_an_error_stays_one_line(tmp_path: Path) -> None:
    done = run(tmp_path, "keys", "create", "--name", "a", "--role", "root",
               "--db", "duckdb:///x.duckdb")  # fmt: skip
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error:")
