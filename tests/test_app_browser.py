"""End to end: ``streamlit run app.py`` on a real run, opened in Debian's headless chromium via Playwright.

The run is real: four of the pretrained notMNIST candidates in ``../shared/benchmarks`` (20 images per class) ranked
with the default metrics, the weight spectrum and a linear-probe ground truth (the fixture run of
``tests/fixtures/make_run.py`` stands in, with a note, where ../shared is absent). Every tab is opened at desktop
(1440 x 900) and phone (390 x 844) width, checked, and photographed; the screenshots go to
:data:`SCREENSHOT_DIR` for people to look at (the README's two come from there).

Needs /usr/bin/chromium and the playwright package (both installed by `bash scripts/setup.sh --test`); skipped with the
reason when either is genuinely unavailable. Playwright drives the system chromium (``executable_path``); it
never downloads a browser.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.dashboard import runs
from analyzer.reports import save
from analyzer.result import RankingResult
from tests.conftest import BENCHMARKS
from tests.test_app import APP, TABS, build_fixture_cache

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
SCREENSHOT_DIR = Path("/tmp/dashboard_screens")
VIEWPORTS = {"desktop": (1440, 900), "phone": (390, 844)}
NOTMNIST = BENCHMARKS / "notmnist"
REAL_CANDIDATES = (
    "mnist_lenet5_clntrained",
    "mnist_lenet5_advtrained",
    "cifar10_resnet20",
    "cifar10_tutorialnet",
)


def build_real_run(cache: Path) -> None:
    """Rank four real pretrained candidates on notMNIST (20 images per class) with the default metrics, the
    bootstrap and a linear-probe ground truth, as ``rank --ground-truth`` would; the fixture runs without
    ../shared."""
    if not NOTMNIST.is_dir():
        build_fixture_cache(cache)
        return
    from analyzer.paths import CacheLayout
    from analyzer.probe import probe_models
    from analyzer.ranking import Ranker

    data = str(NOTMNIST / "target.npz")
    specs = [f"torchscript:{NOTMNIST / 'models' / name}.pt" for name in REAL_CANDIDATES]
    probed = probe_models(data, specs, cache_dir=cache, max_per_class=20, progress=False)
    ranker = Ranker(data, cache_dir=cache, max_per_class=20, progress=False)
    result = ranker.run(
        specs, ground_truth={m: r["accuracy"] for m, r in probed.items()}, n_bootstrap=20, name="notmnist"
    )
    save(result, CacheLayout(ranker.cache_dir).new_run_dir("notmnist"))


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
            "the playwright package is not installed: run `bash scripts/setup.sh --test` (requirements-test.txt)"
        )
    return sync_playwright


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def dashboard_url(cache_dir: Path, tmp_path: Path) -> Iterator[str]:
    """A running ``streamlit run app.py`` on a real run; yields its URL and stops it afterwards."""
    build_real_run(cache_dir)
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


#: What must be on screen in each tab before its screenshot is taken.
TAB_READY = {
    "Ranking": ".js-plotly-plot",
    "Metrics": ".js-plotly-plot",
    "Cost": ".js-plotly-plot",
    "Ground truth": ".js-plotly-plot",
    "Weight spectrum": ".js-plotly-plot",
    "Feature space": ".js-plotly-plot",
    "New ranking": '[data-testid="stForm"]',
}


def test_every_tab_in_chromium_at_desktop_and_phone_width(dashboard_url: str, cache_dir: Path) -> None:
    sync_playwright = _require_browser()
    result = RankingResult.load(runs.list_runs(cache_dir)[0].path)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            for device, (width, height) in VIEWPORTS.items():
                page = browser.new_page(viewport={"width": width, "height": height})
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(dashboard_url, wait_until="domcontentloaded", timeout=PAGE_LIMIT_MS)
                page.get_by_text(result.headline()).wait_for(timeout=PAGE_LIMIT_MS)
                for tab in TABS:
                    page.get_by_role("tab", name=tab, exact=True).click()
                    panel = page.locator('[role="tabpanel"]:visible')
                    panel.locator(TAB_READY[tab]).first.wait_for(state="visible", timeout=PAGE_LIMIT_MS)
                    page.wait_for_load_state("networkidle", timeout=PAGE_LIMIT_MS)
                    page.wait_for_timeout(500)  # plotly's transitions
                    assert not panel.locator('[data-testid="stException"]').count(), (device, tab)
                    if tab == "Ranking":
                        table = panel.locator('[data-testid="stDataFrame"]').first
                        box = table.bounding_box()
                        assert box is not None and box["height"] > 35 * len(result.ranking)
                        assert panel.get_by_text("Download CSV").count() == 1
                    name = f"{device}-{tab.lower().replace(' ', '-')}.png"
                    # Streamlit scrolls inside its main element, so a full-page shot is one screen: grow the
                    # window to the content's height instead
                    tall = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
                    page.set_viewport_size({"width": width, "height": max(height, tall)})
                    page.wait_for_timeout(500)
                    page.screenshot(path=str(SCREENSHOT_DIR / name))
                    page.set_viewport_size({"width": width, "height": height})
                    assert (SCREENSHOT_DIR / name).stat().st_size > 10_000
                page.close()
        finally:
            browser.close()
    assert not errors, errors
