"""The web app's performance dashboard in a real browser: page and data on the demo store.

    python -m benchmarks.run --only web [--quick]

Each run starts a fresh ``banking-analytics serve`` over the demo store (its world
as ``make demo`` makes it: ``cli._demo.DEMO_WORLD``), so the server's result cache is
cold, signs in over HTTP, and opens ``/performance`` in a fresh context of
Debian's Chromium (no browser cache either). The figures are the browser's own:
Navigation Timing for the page (its HTML carries the first answer, computed
then), the marks the page sets once its tiles and table are drawn (``ba:tiles``)
and once its charts are (``ba:drawn``, after plotly.js has loaded), and Resource
Timing for the data endpoint the page polls, asked again while nothing changed
(warm). Beside them, the API's own dashboard endpoint on a
fresh server, timed by the client: the same work without HTML or a browser.
"""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

import httpx
from playwright.sync_api import Browser, sync_playwright

from banking_analytics.access import Role
from banking_analytics.cli._demo import DEMO_WORLD
from benchmarks.http import DASHBOARD_PATH, issue_key, serving
from benchmarks.run import CLI, RUNS, BenchmarkError, Context, Measurement, Sample, run_command

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
QUICK_USERS = 2_000
#: Warm polls of the data endpoint timed per run; a run's figure is their median.
WARM_POLLS = 5


def session_cookie(base: str, key: str) -> str:
    with httpx.Client(base_url=base) as client:
        form = client.get("/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        if csrf is None:
            raise BenchmarkError("the sign-in page has no CSRF token")
        answer = client.post("/signin", data={"key": key, "csrf": csrf[1]})
        if answer.status_code != 303:
            raise BenchmarkError(f"sign-in answered {answer.status_code}")
        return answer.cookies["ba_session"]


def _page_run(browser: Browser, base: str, key: str) -> dict[str, float]:
    """Seconds to the page's last byte, to first contentful paint, to its figures
    drawn, and of one warm data request (median of ``WARM_POLLS``)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        context.add_cookies(
            [{"name": "ba_session", "value": session_cookie(base, key), "url": base}]
        )
        page = context.new_page()
        answer = page.goto(f"{base}/performance?period=24h")
        if answer is None or answer.status != 200:
            raise BenchmarkError(f"the page answered {answer.status if answer else None}")
        page.wait_for_selector("#tile-success_rate")
        page.wait_for_function("performance.getEntriesByName('ba:drawn').length > 0")
        timing = page.evaluate(
            """() => ({
                html: performance.getEntriesByType('navigation')[0].responseEnd,
                paint: performance.getEntriesByName('first-contentful-paint')[0].startTime,
                tiles: performance.getEntriesByName('ba:tiles')[0].startTime,
                drawn: performance.getEntriesByName('ba:drawn')[0].startTime,
            })"""
        )
        polls = page.evaluate(
            """async (n) => {
                const took = [];
                for (let i = 0; i < n; i++) {
                    const url = '/performance/data?period=24h&poll=' + i;
                    await (await fetch(url)).json();
                    took.push(performance.getEntriesByName(location.origin + url)[0].duration);
                }
                return took;
            }""",
            WARM_POLLS,
        )
        return {
            "html": timing["html"] / 1000,
            "paint": timing["paint"] / 1000,
            "tiles": timing["tiles"] / 1000,
            "drawn": timing["drawn"] / 1000,
            "data": statistics.median(polls) / 1000,
        }
    finally:
        context.close()


def _api_run(base: str, key: str) -> float:
    with httpx.Client(base_url=base, timeout=60) as client:
        started = time.perf_counter()
        answer = client.get(
            DASHBOARD_PATH,
            params={"time_period": "24h"},
            headers={"Authorization": f"Bearer {key}"},
        )
        seconds = time.perf_counter() - started
    if answer.status_code != 200:
        raise BenchmarkError(f"the API dashboard answered {answer.status_code}")
    return seconds


def web(ctx: Context) -> tuple[list[Measurement], list[str]]:
    if not CHROMIUM.exists():
        raise BenchmarkError(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    users = QUICK_USERS if ctx.quick else DEMO_WORLD["users"]
    ctx.reporter.start("web", 1 + 2 * RUNS)
    store = f"duckdb:///{ctx.tmp}/demo.duckdb"
    world = ("--days", str(DEMO_WORLD["days"]), "--institutions", str(DEMO_WORLD["institutions"]))
    cmd = [CLI, "simulate", "--users", str(users), *world, "--db", store]
    seconds, _, stdout = run_command(cmd, ctx.tmp)
    events = int(re.search(r"stored\s+([\d,]+)\s+events", stdout)[1].replace(",", ""))  # type: ignore[index]
    ctx.reporter.step(f"simulated {events:,} events in {seconds:.0f} s")
    key = issue_key(store, Role.ANALYST)
    runs: dict[str, list[Sample]] = {
        name: [] for name in ("html", "paint", "tiles", "drawn", "data", "api")
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            for i in range(RUNS):
                with serving(store, ctx.tmp) as server:
                    for name, value in _page_run(browser, server.base, key).items():
                        runs[name].append(Sample(value, events))
                ctx.reporter.step(
                    f"page run {i + 1}/{RUNS}: drawn in {runs['drawn'][-1].seconds:.2f} s"
                )
                with serving(store, ctx.tmp) as server:
                    runs["api"].append(Sample(_api_run(server.base, key), events))
                ctx.reporter.step(f"API run {i + 1}/{RUNS}: {runs['api'][-1].seconds:.2f} s")
        finally:
            browser.close()
    targets = {"html": 1.0, "paint": 1.0, "tiles": 1.0, "data": 0.3}
    labels = {
        "html": "page HTML with its first answer, cold server (navigation responseEnd)",
        "paint": "first contentful paint, cold server",
        "tiles": "tiles and institution table drawn, cold server",
        "drawn": "every chart drawn (plotly.js loaded and run), cold server",
        "data": f"data endpoint the page polls, warm (median of {WARM_POLLS} per run)",
        "api": "baseline: API GET /dashboard/performance, cold server (client-timed)",
    }
    measurements = [
        Measurement(labels[name], tuple(samples), max_seconds=targets.get(name), show_rate=False)
        for name, samples in runs.items()
    ]
    notes = [
        f"Demo store: {events:,} events ({users:,} users, {DEMO_WORLD['days']} days, "
        f"{DEMO_WORLD['institutions']} institutions); time range 24h, no filters.",
        "Browser: Debian's Chromium, headless, a fresh context per run (no cached plotly.js).",
    ]
    return measurements, notes
