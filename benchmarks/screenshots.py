"""The web app's screenshots in docs/images, taken in Debian's Chromium on the demo world.

    python -m benchmarks.screenshots [--db duckdb:///demo-data/analytics.duckdb]
    python -m benchmarks.screenshots --url http://127.0.0.1:8000 --key ba_live_...

Serves the store (by default a fresh demo world in a temporary directory, as
``make demo`` makes it) and signs in with a new analyst key, or signs in to a
running server (``make demo``'s, with the key it printed), and saves the
performance dashboard (last 7 days) and the drill-down of its busiest institution
at 1280 px.
Not a benchmark: it sits beside them because it shares their server and browser.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from banking_analytics.access import Role
from banking_analytics.cli._demo import DEMO_WORLD
from benchmarks.http import issue_key, serving
from benchmarks.run import CLI, run_command
from benchmarks.web import CHROMIUM, FLAGS, session_cookie

IMAGES = Path(__file__).parents[1] / "docs" / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a store to show (default: a fresh demo world)")
    parser.add_argument("--url", help="a running server to show instead, with --key")
    parser.add_argument("--key", help="an analyst or admin key of that server")
    args = parser.parse_args()
    if args.url:
        _shoot(args.url, args.key)
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = args.db or f"duckdb:///{tmp}/demo.duckdb"
        if args.db is None:
            world = [f"--{name}={value}" for name, value in DEMO_WORLD.items()]
            run_command([CLI, "simulate", *world, "--db", store], Path(tmp))
        key = issue_key(store, Role.ANALYST)
        with serving(store, Path(tmp)) as server:
            _shoot(server.base, key)


def _shoot(base: str, key: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_cookies(
            [{"name": "ba_session", "value": session_cookie(base, key), "url": base}]
        )
        page = context.new_page()
        page.goto(f"{base}/performance?period=7d")
        page.wait_for_function("performance.getEntriesByName('ba:drawn').length > 0")
        page.screenshot(path=IMAGES / "web-dashboard.png", full_page=True)
        # The busiest institution's drill-down: sorted by sample, largest first.
        for _ in range(2):
            page.click("th button[data-sort='sample_size']")
        page.locator("#institutions tbody tr a").first.click()
        page.wait_for_function("performance.getEntriesByName('ba:drawn').length > 0")
        page.screenshot(path=IMAGES / "web-institution.png", full_page=True)
        browser.close()
    print(f"saved {IMAGES / 'web-dashboard.png'} and {IMAGES / 'web-institution.png'}")


if __name__ == "__main__":
    main()
