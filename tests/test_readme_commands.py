"""The README's shell examples, run as written in a fresh folder (``cwd``), in order.

What a test changes is said where it does: the port (a free one instead of 8000),
the world's size (a small one instead of 20,000 users x 90 days), and the demo
stops after its summary (``--no-serve``) instead of serving until Ctrl-C. The
quick start's ``make demo`` / ``make test`` are what CI runs; a test checks what
``make demo PORT=...`` would run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from api_server import SERVER_ENV, free_port, wait_until_serving
from sample_events import behavior_events

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
#: The folder holding ``banking-analytics``, first on the examples' PATH.
BIN = str(Path(sys.executable).parent)


def block(heading: str) -> str:
    """The first shell block under ``heading`` in the README."""
    section = README.split(f"\n{heading}\n", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def commands(text: str) -> list[str]:
    """The block's commands, continuation lines joined."""
    return [c.strip() for c in text.replace("\\\n", " ").splitlines() if c.strip()]


def shell(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**SERVER_ENV, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "200"}
    return subprocess.run(
        ["bash", "-c", f"set -eo pipefail\n{script}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.duckdb
def test_the_rest_api_example_runs_as_written(tmp_path: Path) -> None:
    port = free_port()
    lines = commands(block("## REST API").replace(":8000", f":{port}").replace(
        "--port 8000", f"--port {port}"
    ))  # fmt: skip
    [served] = [i for i, line in enumerate(lines) if line.split("#")[0].rstrip().endswith("&")]
    curls = lines[served + 1 :]
    assert [c.split()[0] for c in curls] == ["curl", "curl"]
    script = "\n".join(
        [
            *lines[: served + 1],
            # The harness: stop the server at the end; wait until it answers.
            "SERVER=$!; trap 'kill $SERVER; wait $SERVER || true' EXIT",
            f"until curl -sf http://127.0.0.1:{port}/healthz >/dev/null; do sleep 0.1; done",
            *(f"{c}; echo" for c in curls),
        ]
    )
    done = shell(script, tmp_path)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(answers) == 2, done.stdout
    read, written = answers
    assert read["success_rate"]["status"] == "insufficient_data", read  # an empty store
    assert written["status"] == "accepted", written
    assert written["metric_id"] == written["event_id"]


@pytest.mark.duckdb
def test_the_command_line_examples_run_in_order(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text(
        "".join(json.dumps(event) + "\n" for event in behavior_events(30))
    )
    (tmp_path / "rates.csv").write_text("currency,valid_from,rate\nEUR,2026-01-01,1.08\n")
    lines = commands(block("## Command line"))
    assert lines[0].startswith("banking-analytics demo ")
    assert lines[-1].startswith("banking-analytics serve ")
    small = "--users 60 --days 3"
    script = [
        lines[0].replace("banking-analytics demo", f"banking-analytics demo --no-serve {small}"),
        *(line.replace("--users 20000 --days 90", small) for line in lines[1:-1]),
    ]
    for line in script:
        done = shell(line, tmp_path)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr
    assert (tmp_path / "demo-data" / "analytics.duckdb").exists()  # the default store
    port = free_port()
    argv = shlex.split(lines[-1].split("#")[0].replace("--port 8000", f"--port {port}"))
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(Path(BIN) / argv[0]), *argv[1:]], cwd=tmp_path, stdout=out, stderr=out
        )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", server, log)
        assert httpx.get(f"http://127.0.0.1:{port}/signin", timeout=5).status_code == 200
    finally:
        server.terminate()
        server.wait(30)


def test_make_demo_passes_the_port_and_fresh() -> None:
    # -n prints what it would run; a make running this test must not lend its flags.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            "-o",
            ".venv/.installed-run",
            "demo",
            "PORT=8001",
            "FRESH=1",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines()[-1] == ".venv/bin/banking-analytics demo --port 8001 --fresh"


@pytest.mark.postgres
def test_the_postgresql_example_runs_on_the_test_server(
    tmp_path: Path, postgres_store_url: str
) -> None:
    """Its ``pip install`` is how this environment has psycopg; the command runs as
    written against the test server (its URL instead of db.internal's), on a small world."""
    install, simulate = commands(block("## Deployment on PostgreSQL"))
    assert install.startswith("pip install 'banking-analytics[postgres]'")
    url = re.search(r"'(postgresql://[^']+)'", simulate)
    assert url is not None
    line = simulate.replace(url[1], postgres_store_url).replace("--users 7000", "--users 60")
    done = shell(line.replace("--days 90", "--days 3"), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "simulated and stored" in done.stdout
