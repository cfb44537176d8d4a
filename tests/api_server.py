"""Real API servers on free loopback ports: uvicorn in a thread, or the
``banking-analytics serve`` command in a process of its own."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.access import KeyStore, Role
from banking_analytics.api import ApiSettings, create_app, uvicorn_options

CLI = str(Path(sys.executable).with_name("banking-analytics"))
#: Rate limits far above what the tests send.
SERVER_ENV = {
    **os.environ,
    "BA_RATE_LIMIT_PER_SECOND": "1000000",
    "BA_RATE_LIMIT_BURST": "1000000",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running(settings: ApiSettings, **create: Any) -> Iterator[str]:
    """Serve ``create_app(settings, **create)`` over HTTP, with the connection limits of
    ``settings`` as ``banking-analytics serve`` applies them, until the block ends;
    yields the base URL."""
    # The server is handed a socket already bound: a port found free and bound later could
    # be taken in between by a test running beside this one (pytest-xdist).
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port: int = listening.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, **create),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            **uvicorn_options(settings),
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listening]}, name="uvicorn", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listening.close()


def issue_key(store_url: str, role: Role, name: str) -> str:
    """A key of ``role``, made before a server opens the store (DuckDB: one process per file)."""
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        keys = KeyStore(analytics.engine)
        try:
            return keys.create(name, role).secret
        finally:
            keys.close()


def wait_until_serving(
    base: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 60
) -> None:
    """Return once the server process ``proc`` has said it listens at ``base`` and answers
    ``/healthz`` there; raise, with its output from ``log``, if it exits or does not answer
    in time. (An answer alone could come from another test's server that took the port
    between ``free_port`` and this one binding it.)"""
    # uvicorn's line names the host it binds (0.0.0.0, say), which may not be base's.
    listening = re.compile(rf"running on \S+:{base.rsplit(':', 1)[1]}\b")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text()}")
        try:
            if listening.search(log.read_text(errors="replace")) and (
                httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            ):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the server did not answer in {seconds:g} s:\n{log.read_text()}")


class Server:
    """``banking-analytics serve`` on a free loopback port, its output appended to ``log``;
    ``env`` adds settings (``BA_*``) to the server's environment."""

    def __init__(
        self, store_url: str, log: Path, *options: str, env: Mapping[str, str] | None = None
    ) -> None:
        self.store_url, self.log, self.options = store_url, log, options
        self.env = {**SERVER_ENV, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        """Start on a free port; on another if that one was taken before the server bound it."""
        for attempt in range(3):
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            cmd = [CLI, "serve", "--db", self.store_url, "--host", "127.0.0.1", "--port", str(port)]
            cmd += self.options
            with self.log.open("ab") as out:
                written = out.tell()  # what earlier attempts wrote says nothing of this one
                self.proc = subprocess.Popen(
                    cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env
                )
            try:
                wait_until_serving(self.url, self.proc, self.log)
                return
            except RuntimeError:
                own = self.log.read_bytes()[written:]
                if attempt == 2 or b"address already in use" not in own:
                    raise

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 30 s); a no-op if it is not running."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()
