"""End to end: ``streamlit run app.py`` on a fixture cache, opened in Debian's headless chromium via Playwright.

Needs /usr/bin/chromium and the playwright package (both installed by scripts/setup_browser.sh); skipped with the
reason when either is genuinely unavailable. Playwright drives the system chromium (``executable_path``); it
never downloads a browser. The screenshot is kept in the test's tmp dir and copied to
/tmp/dashboard_screenshot.png for people to look at.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer import dashboard as dash
from tests.test_app import APP, build_fixture_cache

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT_COPY = Path("/tmp/dashboard_screenshot.png")
STARTUP_LIMIT_S = 120  # waiting for the server to come up on 2 busy cores; a limit, not a timing assertion
PAGE_LIMIT_MS = 120_000


def _require_browser():
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is not installed: run scripts/setup_browser.sh (as root on Debian it installs chromium)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(
            "the playwright package is not installed: run scripts/setup.sh (it is in requirements.txt)"
        )
    return sync_playwright


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def dashboard_url(cache_dir: Path, tmp_path: Path) -> Iterator[str]:
    """A running ``streamlit run app.py`` on a fixture cache; yields its URL and stops it afterwards."""
    build_fixture_cache(cache_dir)
    port = _free_port()
    env = dict(os.environ, ANALYZER_CACHE_DIR=str(cache_dir), OMP_NUM_THREADS="1")
    log_path = tmp_path / "streamlit.log"
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, cwd=APP.parent, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
                    if response.read().strip() == b"ok":
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"streamlit did not start (exit code {proc.poll()}):\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_dashboard_shows_the_ranking_table_and_a_chart_in_chromium(
    dashboard_url: str, cache_dir: Path, tmp_path: Path
) -> None:
    sync_playwright = _require_browser()
    report = dash.load_report(dash.list_runs(cache_dir)[0].path)
    best = dash.display_names(report)[report["ranking"][0]["model"]]
    shot = tmp_path / "dashboard.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(dashboard_url, wait_until="domcontentloaded", timeout=PAGE_LIMIT_MS)
            # The recommendation, the ranking table and the aggregate chart of the Ranking tab.
            page.get_by_text(f"Recommendation: {best}").wait_for(timeout=PAGE_LIMIT_MS)
            table = page.locator('[data-testid="stDataFrame"]').first
            table.wait_for(state="visible", timeout=PAGE_LIMIT_MS)
            chart = page.locator(".js-plotly-plot").first
            chart.wait_for(state="visible", timeout=PAGE_LIMIT_MS)
            page.locator(".js-plotly-plot .bars path").first.wait_for(state="attached", timeout=PAGE_LIMIT_MS)
            assert "Aggregate mean rank" in chart.inner_text()
            box = table.bounding_box()
            assert box is not None and box["height"] > 100 and box["width"] > 300
            assert page.get_by_role("tab", name="Feature space").count() == 1
            assert page.get_by_text("Download CSV").count() == 1
            page.wait_for_load_state("networkidle", timeout=PAGE_LIMIT_MS)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    shutil.copyfile(shot, SCREENSHOT_COPY)
