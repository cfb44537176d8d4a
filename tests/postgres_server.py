"""A PostgreSQL server for the tests: the local one if reachable, else a throwaway cluster.

Discovery order: ``BA_TEST_POSTGRES_URL`` (or ``postgresql://postgres@127.0.0.1:5432/test``)
when it accepts a connection; otherwise a temporary cluster made with the Debian
binaries (``/usr/lib/postgresql/*/bin/initdb`` and ``pg_ctl``) on a free port.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

__all__ = [
    "DEFAULT_URL",
    "ThrowawayCluster",
    "configured_url",
    "missing",
    "reachable",
    "start_throwaway_cluster",
]

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
_SUPERUSER = "postgres"


def configured_url() -> str:
    return os.environ.get("BA_TEST_POSTGRES_URL") or DEFAULT_URL


def reachable(url: str) -> str | None:
    """None if ``url`` accepts a connection, else why not."""
    try:
        with psycopg.connect(url, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return " ".join(str(exc).split())


def missing(reason: str) -> None:
    """PostgreSQL cannot be had: skip saying why, but fail under CI, which must test it."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _as_owner() -> list[str]:
    """initdb and pg_ctl refuse to run as root: run them as the postgres user then."""
    return ["runuser", "-u", _SUPERUSER, "--"] if os.geteuid() == 0 else []


@dataclass
class ThrowawayCluster:
    """A temporary PostgreSQL cluster; ``stop()`` shuts it down and deletes its files."""

    directory: Path
    pg_ctl: str
    url: str

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def stop(self) -> None:
        try:
            subprocess.run(
                [*_as_owner(), self.pg_ctl, "stop", "-D", str(self.data), "-m", "immediate", "-w"],
                check=True,
                capture_output=True,
                timeout=60,
            )
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def start_throwaway_cluster() -> ThrowawayCluster:
    """initdb + pg_ctl start in a temporary directory on a free port (trust auth, loopback).

    Raises ``RuntimeError`` saying why when the binaries or the postgres user are missing.
    """
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
    if not binaries:
        raise RuntimeError("no PostgreSQL binaries in /usr/lib/postgresql/*/bin")
    initdb, pg_ctl = (f"{binaries[-1]}/{tool}" for tool in ("initdb", "pg_ctl"))
    directory = Path(tempfile.mkdtemp(prefix="ba-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(_SUPERUSER)
        except KeyError:
            shutil.rmtree(directory)
            raise RuntimeError(f"running as root and there is no {_SUPERUSER!r} user") from None
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    cluster = ThrowawayCluster(
        directory, pg_ctl, f"postgresql://{_SUPERUSER}@127.0.0.1:{port}/postgres"
    )
    options = f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={directory}"
    steps = [
        [initdb, "-D", str(cluster.data), "-U", _SUPERUSER, "--auth=trust", "-E", "UTF8",
         "--no-sync"],
        [pg_ctl, "start", "-D", str(cluster.data), "-w", "-t", "60",
         "-l", str(directory / "server.log"), "-o", options],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(
            [*_as_owner(), *step], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            log = directory / "server.log"
            detail = done.stderr.strip() or (log.read_text() if log.exists() else "")
            with contextlib.suppress(subprocess.SubprocessError):
                cluster.stop()  # a half-started server, then the files
            raise RuntimeError(f"{Path(step[0]).name} failed: {detail}")
    return cluster
