"""docs/monitoring.md's examples run as written: its files, its Python, its commands."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from banking_analytics.cli import app

#: The SLO section's examples run in test_monitor_slo_docs.py.
SLO_SECTION = re.compile(r"\n## Service level objectives.*?(?=\n## |\Z)", re.S)
DOC = SLO_SECTION.sub("\n", (Path(__file__).parents[1] / "docs" / "monitoring.md").read_text())
DOC_DB = "duckdb:///monitor.duckdb"


def blocks(kind: str) -> list[str]:
    return [b.split("```", 1)[0] for b in DOC.split(f"```{kind}\n")[1:]]


@contextmanager
def inside(folder: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def test_the_examples_of_docs_monitoring_run_as_written(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {}
    for block in blocks("yaml"):
        first = block.partition("\n")[0]
        name = re.fullmatch(r"# file: (\S+)", first)
        assert name is not None, f"a YAML example without '# file: NAME': {first}"
        files[name[1]] = block
        (tmp_path / name[1]).write_text(block)
    assert set(files) == {"rules.yaml", "bad-rules.yaml", "rules-test.yaml"}

    [python] = blocks("python")
    with inside(tmp_path):
        exec(compile(python.replace(DOC_DB, store_url), "docs/monitoring.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    # What the example says it prints: the comments after its first print.
    after_print = python.split("print(", 1)[1].splitlines()
    expected = [line.strip()[2:] for line in after_print if line.strip().startswith("# ")]
    assert printed == [
        "firing warning ins_a 0.88",
        "ins_a: link success rate 88%",
        "12:35 pending → firing",
        "12:30 inactive → pending",
    ]
    assert expected == printed

    failing, commands = blocks("console")
    command, *shown = failing.strip().splitlines()
    with inside(tmp_path):
        result = CliRunner().invoke(app, command.split()[2:], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == shown
    for line in commands.strip().splitlines():
        args = line.removeprefix("$ banking-analytics ").replace(DOC_DB, store_url).split()
        with inside(tmp_path):
            result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
        assert result.exit_code == 0, f"{line}: {result.output}"
        if args[:2] == ["rules", "test"]:
            assert "SUCCESS (2 checks)" in result.stdout
        if args[:2] == ["alerts", "list"]:
            assert "ins_a" in result.stdout
