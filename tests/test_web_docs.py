"""docs/web.md and the README's web app section, run as written: the commands that
open the web app, then signing in with the key they print and the linked URL."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx

from api_server import CLI, SERVER_ENV, free_port

ROOT = Path(__file__).parents[1]
DOCS = (ROOT / "docs" / "web.md").read_text()
README = (ROOT / "README.md").read_text()


def _block(text: str, heading: str) -> str:
    section = text.split(heading + "\n", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def test_the_readme_shows_the_docs_commands() -> None:
    assert _block(README, "## Web app") == _block(DOCS, "## Opening it")


def test_the_commands_open_the_web_app(tmp_path: Path) -> None:
    store, port = f"duckdb:///{tmp_path}/web-demo.duckdb", free_port()
    lines = _block(DOCS, "## Opening it").strip().splitlines()
    assert len(lines) == 3
    commands = [
        line.replace("duckdb:///web-demo.duckdb", store).replace("--port 8000", f"--port {port}")
        for line in lines
    ]
    outputs = []
    for line in commands[:2]:
        argv = shlex.split(line)
        assert argv[0] == "banking-analytics"
        done = subprocess.run([CLI, *argv[1:]], capture_output=True, text=True, check=True)
        outputs.append(done.stdout)
    key = re.search(r"ba_live_\S+", outputs[1])
    assert key is not None
    # The catalogue example of "Institution names", on that store, before it is served.
    example = _python(DOCS, "### Institution names").replace("duckdb:///web-demo.duckdb", store)
    recorded = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, check=True
    )
    assert recorded.stdout.split() == ["1", "First", "Platypus", "Bank"]
    env_part, command = commands[2].split(" ", 1)
    name, value = env_part.split("=")
    argv = shlex.split(command)
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [CLI, *argv[1:]], env={**SERVER_ENV, name: value}, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(base, server)
        with httpx.Client(base_url=base, timeout=60) as client:
            form = client.get("/", follow_redirects=True)  # the sign-in form
            assert form.url.path == "/signin"
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert csrf is not None
            signed = client.post("/signin", data={"key": key[0], "csrf": csrf[1]})
            assert signed.status_code == 303
            page = client.get(signed.headers["location"])
            assert page.status_code == 200
            assert 'data-poll-seconds="5.0"' in page.text
            assert "First Platypus Bank" in page.text  # the recorded name, in the page's data
            # The link of "Filters and links" opens as written.
            link = re.search(r"`(/performance\?period=custom[^`]+)`", DOCS)
            assert link is not None
            assert client.get(link[1]).status_code == 200
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def _python(text: str, heading: str) -> str:
    section = text.split(heading + "\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def _wait(base: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        assert server.poll() is None, "the server exited"
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        subprocess.run(["sleep", "0.1"], check=True)
    raise AssertionError("the server did not answer")
