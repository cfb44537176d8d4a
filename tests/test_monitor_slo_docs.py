"""docs/monitoring.md's SLO section runs as written: its files and its commands."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from banking_analytics.cli import app
from banking_analytics.monitor import Slo, read_rule_file
from test_monitor_docs import DOC_DB, SLO_SECTION, inside

[SECTION] = SLO_SECTION.findall((Path(__file__).parents[1] / "docs" / "monitoring.md").read_text())


def blocks(kind: str) -> list[str]:
    return [b.split("```", 1)[0] for b in SECTION.split(f"```{kind}\n")[1:]]


def test_the_slo_examples_of_docs_monitoring_run_as_written(store_url: str, tmp_path: Path) -> None:
    files = {}
    for block in blocks("yaml"):
        name = re.fullmatch(r"# file: (\S+)", block.partition("\n")[0])
        assert name is not None
        files[name[1]] = block
        (tmp_path / name[1]).write_text(block)
    assert set(files) == {"slos.yaml", "slos-test.yaml"}
    [slo] = read_rule_file(str(tmp_path / "slos.yaml"))
    assert isinstance(slo, Slo)
    # The table's 30-day column is what the SLO derives.
    assert [f for _, f in slo.factors()] == [14.4, 6.0, 3.0, 1.0]

    [commands] = blocks("console")
    outputs = []
    for line in commands.strip().splitlines():
        args = line.removeprefix("$ banking-analytics ").replace(DOC_DB, store_url).split()
        with inside(tmp_path):
            result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
        assert result.exit_code == 0, f"{line}: {result.output}"
        outputs.append(result.stdout)
    assert "link_success" in outputs[0]
    assert "created" in outputs[0]
    assert "1 SLOs" in outputs[1]
    assert "link_success" in outputs[1]
    assert "0.995" in outputs[1]
    assert "slos-test.yaml: SUCCESS (3 checks)" in outputs[2]
