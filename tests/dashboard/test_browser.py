"""The dashboard in a real browser (Playwright driving Debian's chromium) against a real `hyperscope run`.

Each page loads with no console error and charts that drew pixels; the numbers shown are the API's for the
same state update; a heatmap cell's positions sum to the cell; a new state update changes the freshness label
through the live stream without a reload; signed-out requests go to sign-in; a revoked key's session ends.
Screenshots of every page go to build/screenshots/ (kept by CI as artifacts, and shown in the README)."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.process import Running, hyperscope

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.xdist_group("browser")  # one server and one browser for the module, on one worker

SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
PAGES = {
    "market": "/dashboard",
    "perps": "/dashboard/perps",
    "coin": "/dashboard/coin/BTC",
    "cohorts": "/dashboard/cohorts",
    "cohort": "/dashboard/cohorts/3",
    "heatmap": "/dashboard/heatmap",
    "migration": "/dashboard/cohorts/migration",
    "migration-size": "/dashboard/cohorts/migration?category=size",
    "liquidations": "/dashboard/coin/BTC/liquidations",
    "leaderboards": "/dashboard/leaderboards?period=all",
}
CHARTED = {"market", "coin", "cohort", "migration", "liquidations"}
DEADLINE_MS = 90_000  # a loaded 2-core machine is slow; every wait is for a condition, with this deadline


def chromium_path() -> str:
    for candidate in (os.environ.get("HYPERSCOPE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if candidate and Path(candidate).exists():
            return candidate
    if os.environ.get("CI"):
        pytest.fail("no Chromium: scripts/test installs Debian's chromium (scripts/chromium)")
    pytest.skip("no Chromium here; scripts/chromium installs it")
    raise AssertionError


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("dash")
    run = Running("run", "--scale", "tiny", "--hours", "26", "--interval", "2", "--data-dir", str(data))
    link = re.search(r"(/dashboard/sign-in\?link=\S+)", run.stdout)
    assert link, run.stdout
    run.link = link.group(1)  # type: ignore[attr-defined]
    run.data = data  # type: ignore[attr-defined]
    yield run
    run.signal()
    run.finish()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = context.new_page()
    p.set_default_timeout(DEADLINE_MS)
    p.errors = []  # type: ignore[attr-defined]
    p.on("console", lambda m: p.errors.append(m.text) if m.type == "error" else None)  # type: ignore[attr-defined]
    p.on("pageerror", lambda e: p.errors.append(str(e)))  # type: ignore[attr-defined]
    yield p
    context.close()


def sign_in(page, server) -> None:
    """Sign in with the run's key through the form (the printed link is one-time, used by its own test)."""
    page.goto(server.base + "/dashboard/sign-in")
    page.fill("input[name=key]", server.key)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/dashboard$"))


# per chart canvas, how many pixels are not blank
PIXELS = """() => Array.from(document.querySelectorAll('.chart canvas')).map(c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })"""


def test_signed_out_requests_go_to_sign_in(page, server):
    page.goto(server.base + "/dashboard/perps")
    assert re.search(r"/dashboard/sign-in\?next=/dashboard/perps$", page.url)


def test_the_printed_link_signs_in_once(page, server, browser):
    page.goto(server.base + server.link)
    assert page.url.endswith("/dashboard") and page.locator("#freshness").count() == 1
    other = browser.new_context().new_page()
    other.goto(server.base + server.link)
    assert "/dashboard/sign-in" in other.url and "already used" in other.content()
    other.context.close()


def test_every_page_loads_without_errors_with_charts_drawn(page, server):
    sign_in(page, server)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name, path in PAGES.items():
        page.goto(server.base + path)
        page.wait_for_load_state("networkidle")
        if name in CHARTED:
            # every chart of the page drew (checked in one evaluation: a live update may redraw them meanwhile)
            page.wait_for_function(
                f"() => {{ const n = ({PIXELS})(); return n.length > 0 && "
                "n.length >= document.querySelectorAll('.chart').length && n.every(x => x > 500); }"
            )
        assert page.locator("main#main").count() == 1, name
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        page.screenshot(path=str(SHOTS / f"{name}.jpg"), type="jpeg", quality=70)  # the top, for the README
        assert page.errors == [], (name, page.errors)


def test_the_market_page_shows_the_apis_numbers_for_its_state_update(page, server):
    sign_in(page, server)
    page.goto(server.base + "/dashboard")
    # read at once from the page's main section (a live update may swap it at any moment): its numbers and
    # the state update they are of
    read = page.evaluate(
        """() => { const m = document.querySelector('main#main');
            const v = f => Number(m.querySelector(`[data-field=${f}]`).dataset.value);
            return {openInterest: v('openInterest'), count: v('count'), time: Number(m.dataset.time)}; }"""
    )
    shown = {"openInterest": read["openInterest"], "count": read["count"]}
    time_ms = int(read["time"])
    stamp = datetime.fromtimestamp(time_ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{time_ms % 1000:03d}Z"
    rows = server.get(f"/api/external/position-metrics/general?start={stamp}&end={stamp}", server.key).json()
    row = next(r for r in rows["metrics"] if r["createdAt"] == stamp)
    assert shown == {"openInterest": row["openInterest"], "count": row["count"]}


def test_a_heatmap_cells_positions_sum_to_the_cell(page, server):
    sign_in(page, server)
    page.goto(server.base + "/dashboard/heatmap")
    cell = page.locator("td.cell a").first
    expected = float(cell.get_attribute("data-value"))
    cell.click()
    page.wait_for_selector("#cell-sum")
    total = float(page.get_attribute("#cell-sum", "data-value"))
    values = [float(v) for v in page.eval_on_selector_all("td.value", "els => els.map(e => e.dataset.value)")]
    assert values and sum(values) == pytest.approx(total, rel=1e-9)
    assert total == pytest.approx(float(page.get_attribute("#cell-total", "data-value")), rel=1e-9)
    assert total == pytest.approx(expected, rel=1e-9) or page.get_attribute("#freshness", "data-height")


def test_a_new_state_update_changes_the_freshness_label_without_a_reload(page, server):
    sign_in(page, server)
    page.goto(server.base + "/dashboard")
    first = page.get_attribute("#freshness", "data-height")
    page.evaluate("() => { window.__notReloaded = true; }")
    page.wait_for_function(f"() => document.querySelector('#freshness').dataset.height !== '{first}'")
    assert page.evaluate("() => window.__notReloaded === true")
    assert int(page.get_attribute("#freshness", "data-height")) > int(first)


def test_signing_out_and_a_revoked_key_end_the_session(page, server):
    made = hyperscope("keys", "create", "--name", "browser", "--data-dir", str(server.data))
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    page.goto(server.base + "/dashboard/sign-in")
    page.fill("input[name=key]", token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/dashboard$"))
    revoked = hyperscope("keys", "revoke", token.split("_")[1], "--data-dir", str(server.data))
    assert revoked.returncode == 0, revoked.stderr
    deadline = time.monotonic() + DEADLINE_MS / 1000  # a running server refuses a revoked key within a second
    page.goto(server.base + "/dashboard/perps")
    while "/dashboard/sign-in" not in page.url and time.monotonic() < deadline:
        page.wait_for_timeout(200)
        page.goto(server.base + "/dashboard/perps")
    assert "/dashboard/sign-in" in page.url
    sign_in(page, server)
    page.click("text=sign out")
    page.wait_for_url(re.compile(r".*/dashboard/sign-in$"))
    page.goto(server.base + "/dashboard")
    assert "/dashboard/sign-in" in page.url


def test_screenshots_exist_for_the_readme():
    """The README shows build/screenshots copies kept in docs/screenshots (refreshed by hand from a run)."""
    kept = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    assert {p.stem for p in kept.glob("*.jpg")} >= {"market", "heatmap", "coin"}
