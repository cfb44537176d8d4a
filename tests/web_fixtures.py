"""Fixtures of the web app's browser tests: a simulated store served by uvicorn on
loopback, keys per role, and Debian's Chromium driven by Playwright.

The browser is Debian's ``chromium`` (``make browser`` installs it, as ``make test``
does); where it is missing and cannot be installed the tests skip, saying so, except
under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, sync_playwright

from api_server import CLI, running
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.access import KeyStore, Role
from banking_analytics.api import ApiSettings
from banking_analytics.web import WebSettings

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: How often the pages poll in these tests (the default is 15 s).
POLL_SECONDS = 1.0
#: The simulated world: small, fixed, ending at a fixed hour.
WORLD = ("--users", "2000", "--days", "21", "--seed", "5", "--end", "2026-11-20T12:00:00+00:00")
#: The window the tests look at, as the filter bar's custom dates and as the API's instants.
DATES = {"period": "custom", "start": "2026-11-13", "end": "2026-11-19"}
WINDOW = {"start": "2026-11-13T00:00:00Z", "end": "2026-11-20T00:00:00Z"}
#: Planted: an institution failing every attempt in the window's last two hours (DOWN),
#: and one with three attempts in all (too few for any rate).
DOWN, SPARSE = "ins_planted_down", "ins_planted_sparse"
#: Planted: an institution whose name is markup (it must show as text), failing 10 of its
#: 24 attempts (the lowest success rate of the window).
HOSTILE = "ins_planted_markup"
HOSTILE_NAME = '<script>window.__xss = 1</script><b>Evil</b> & "Co" <img src=x onerror=alert(1)>'


def attempt(institution: str, at: datetime, outcome: str, **fields: object) -> dict[str, object]:
    """A connection attempt through Plaid at ``at``, of 1.5 s."""
    return {
        "event_type": "connection_attempt",
        "event_id": str(uuid.uuid4()),
        "occurred_at": at.isoformat(),
        "user_id": f"planted-{uuid.uuid4().hex[:8]}",
        "attempt_id": uuid.uuid4().hex,
        "aggregator": "plaid",
        "institution_id": institution,
        "feature": "account_linking",
        "flow": "new",
        "started_at": (at - timedelta(seconds=2)).isoformat(),
        "latency_ms": 1500.0,
        "outcome": outcome,
        **fields,
    }


def planted() -> list[dict[str, object]]:
    end = datetime(2026, 11, 20, tzinfo=UTC)
    down = [
        attempt(
            DOWN,
            end - timedelta(minutes=4 * i + 1),
            "failure",
            error_category="institution",
            error_code="INSTITUTION_DOWN",
        )
        for i in range(30)
    ]
    sparse = [attempt(SPARSE, end - timedelta(hours=i + 1), "success") for i in range(3)]
    hostile = [
        attempt(
            HOSTILE,
            end - timedelta(hours=5 * i + 3),
            "failure" if i % 12 < 5 else "success",
            institution_name=HOSTILE_NAME,
            **({"error_category": "institution"} if i % 12 < 5 else {}),
        )
        for i in range(24)
    ]
    return down + sparse + hostile


@dataclass
class Site:
    """The served app over a simulated store, and a key per role."""

    url: str
    analytics: BankingPerformanceAnalytics
    keys: dict[Role, str]
    api: httpx.Client

    def as_key(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@dataclass
class Watched:
    """A page with what it logged: console errors, failed requests, every request's URL."""

    page: Page
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def check_clean(self) -> None:
        """No console error, no failed request, and no request to anywhere but loopback."""
        assert self.errors == []
        assert self.failed == []
        hosts = {
            urlsplit(url).hostname
            for url in self.requests
            if not url.startswith(("blob:", "data:"))
        }
        assert hosts <= {"127.0.0.1"}, hosts


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = tmp_path_factory.mktemp("web") / "store.duckdb"
    url = f"duckdb:///{store}"
    subprocess.run([CLI, "simulate", "--db", url, *WORLD], check=True, capture_output=True)
    with BankingPerformanceAnalytics.open(url) as analytics:
        results = analytics.ingest(planted())
        assert [r.reason for r in results if r.reason] == []
        keys = KeyStore(analytics.engine)
        issued = {role: keys.create(f"web {role.value}", role).secret for role in Role}
        keys.close()
        settings = ApiSettings(
            db=url, rate_limit_per_second=1000, rate_limit_burst=1000, key_cache_seconds=0
        )
        web = WebSettings(poll_seconds=POLL_SECONDS)
        with (
            running(settings, analytics=analytics, web=web) as base,
            httpx.Client(base_url=base, timeout=60) as api,
        ):
            yield Site(base, analytics, issued, api)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (make browser installs Debian's chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI: {message}")
        pytest.skip(f"BROWSER TESTS SKIPPED: {message}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        launched.close()


def watch(page: Page) -> Watched:
    watched = Watched(page)

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(message.text)

    def failed(request: Request) -> None:
        # A load the browser gave up on because the page navigated away is no failure.
        if request.failure != "net::ERR_ABORTED":
            watched.failed.append(f"{request.url}: {request.failure}")

    page.on("console", console)
    page.on("pageerror", lambda exc: watched.errors.append(str(exc)))
    page.on("requestfailed", failed)
    page.on("request", lambda request: watched.requests.append(request.url))
    return watched


@pytest.fixture
def tab(browser: Browser) -> Iterator[Watched]:
    """A fresh browser context (no cookies) and page at 1280 px; it must stay clean."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    watched = watch(context.new_page())
    yield watched
    context.close()
    watched.check_clean()


def sign_in(
    tab: Watched, site: Site, role: Role = Role.ANALYST, path: str = "/performance"
) -> None:
    """Sign in through the form, landing on ``path``."""
    tab.page.goto(f"{site.url}{path}")
    tab.page.fill("#key", site.keys[role])
    tab.page.click("form[action='/signin'] button[type=submit]")
    tab.page.wait_for_selector("#tile-success_rate")
