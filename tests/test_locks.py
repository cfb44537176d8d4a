"""The lock files both make targets install from: exact, hashed, current with pyproject.toml,
the demo's without the test tools but with everything the package imports."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)(?: ;[^\\]*)? \\$")


def locked(name: str) -> dict[str, set[str]]:
    """Each package of a lock file and its pinned versions (one per Python-version marker)."""
    text = (ROOT / "requirements" / name).read_text()
    pins: dict[str, set[str]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2]):
        first = block.splitlines()[0]
        match = PIN.match(first)
        assert match is not None, first  # exactly one version...
        assert "--hash=sha256:" in block, first  # ...with its hashes
        pins.setdefault(canonicalize_name(match[1]), set()).add(match[2])
    return pins


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def test_each_lock_pins_every_dependency_it_installs() -> None:
    run, dev = locked("run.txt"), locked("dev.txt")
    optional = PROJECT["optional-dependencies"]
    assert names(PROJECT["dependencies"]) <= run.keys()
    assert names(PROJECT["dependencies"] + optional["dev"] + optional["postgres"]) <= dev.keys()
    # Both commands run the same versions of what they share.
    assert {name: run[name] for name in run} == {name: dev[name] for name in run}


def test_the_demo_installs_no_test_tools() -> None:
    run = locked("run.txt")
    # (pandas runs: statsmodels, behind the revenue impact model, needs it.)
    for tool in ("pytest", "mypy", "schemathesis", "ruff", "hypothesis", "playwright"):
        assert tool not in run, tool
    assert len(run) < len(locked("dev.txt"))


def test_uv_itself_is_pinned_by_hash() -> None:
    assert set(locked("uv.txt")) == {"uv"}


def imported_modules() -> set[str]:
    """The top-level modules the package imports anywhere (at import time or inside a
    function), other than the standard library's and its own."""
    found: set[str] = set()
    for path in (ROOT / "src" / "banking_analytics").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"banking_analytics"}


def test_the_demo_installs_every_module_the_package_imports() -> None:
    """`make demo` installs the run lock only: a module the package imports that only the
    test tools bring (httpx, for webhook deliveries, once did) breaks the demo while every
    test passes. PostgreSQL's driver comes with the postgres extra."""
    run = locked("run.txt").keys() | names(PROJECT["optional-dependencies"]["postgres"])
    owners = packages_distributions()
    missing = {
        module
        for module in imported_modules()
        if not {canonicalize_name(d) for d in owners.get(module, [module])} & run
    }
    assert not missing
