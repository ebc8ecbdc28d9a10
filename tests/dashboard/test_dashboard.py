"""The dashboard without a browser: vendored assets, sessions, sign-in, headers, every page over HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hyperscope.dashboard import sse
from hyperscope.dashboard.session import COOKIE, LINK_SECONDS, SESSION_SECONDS, Sessions, sign_in_link
from hyperscope.store.base import LatestUpdate
from tests.api.conftest import SECRET

VENDOR = Path(__file__).resolve().parents[2] / "src" / "hyperscope" / "dashboard" / "static" / "vendor"
PAGES = ["", "?range=all", "/perps", "/perps?sort=funding&desc=false&segment=3&dex=xyz", "/coin/BTC", "/cohorts",
         "/cohorts/3", "/heatmap", "/heatmap?openedWithin=24h", "/heatmap/cell?coin=BTC&segment=1",
         "/leaderboards?period=week", "/cohorts/migration", "/cohorts/migration?range=7d",
         "/cohorts/migration?category=size", "/coin/BTC/liquidations", "/coin/ETH/liquidations?height=1"]  # fmt: skip


def test_every_vendored_asset_matches_its_manifest_and_carries_its_licence():
    manifest = json.loads((VENDOR / "manifest.json").read_text())
    listed = set()
    for name, entry in manifest.items():
        assert "LICENSE" in entry["files"] and entry["version"] and entry["source"].startswith("https://")
        for file, digest in entry["files"].items():
            listed.add(f"{name}/{file}")
            assert hashlib.sha256((VENDOR / name / file).read_bytes()).hexdigest() == digest, file
    on_disk = {str(p.relative_to(VENDOR)) for p in VENDOR.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert on_disk == listed
    assert re.fullmatch(r"2\.0\.\d+", manifest["htmx"]["version"])


def test_a_session_ends_with_its_key_or_its_expiry(world):
    now = [1_000_000.0]
    sessions = Sessions(SECRET, world.keys, clock=lambda: now[0])
    token, key = world.keys.create("session")
    cookie = sessions.cookie_for(key)
    assert sessions.key_of(cookie).key_id == key.key_id
    assert sessions.key_of(cookie[:-2] + "xx") is None and sessions.key_of(None) is None
    now[0] += SESSION_SECONDS + 1
    assert sessions.key_of(cookie) is None
    now[0] -= SESSION_SECONDS + 1
    world.keys.revoke(key.key_id)
    assert sessions.key_of(cookie) is None
    assert token


def test_a_sign_in_link_works_once_and_expires(world):
    now = [2_000_000.0]
    sessions = Sessions(SECRET, world.keys, clock=lambda: now[0])
    key_id = world.key.split("_")[1]
    link = sign_in_link(SECRET, key_id).split("link=", 1)[1]
    sessions.links.clock = lambda: now[0]
    fresh = sessions.links.sign({"k": key_id, "n": "abc"})
    assert sessions.redeem(fresh).key_id == key_id
    assert sessions.redeem(fresh) is None  # once
    late = sessions.links.sign({"k": key_id, "n": "def"})
    now[0] += LINK_SECONDS + 1
    assert sessions.redeem(late) is None
    assert sessions.redeem("not-a-token") is None and link


@pytest.fixture(scope="module")
def browser_like(world):
    with TestClient(world.app, follow_redirects=False) as c:
        yield c


def test_signed_out_pages_redirect_to_sign_in_and_sign_in_sets_a_strict_cookie(browser_like, world):
    r = browser_like.get("/dashboard/perps")
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/sign-in?next=/dashboard/perps"
    assert browser_like.get("/dashboard/events").status_code == 401
    bad = browser_like.post("/dashboard/sign-in", content="key=hs_nope_x&next=/dashboard")
    assert bad.status_code == 401 and "unknown or revoked" in bad.text and "hs_nope_x" not in bad.text
    good = browser_like.post("/dashboard/sign-in", content=f"key={world.key}&next=//evil.example/")
    assert good.status_code == 303 and good.headers["location"] == "/dashboard"
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age" in cookie
    assert world.key not in cookie
    browser_like.cookies.clear()


def test_an_oversized_sign_in_form_is_refused_unread(browser_like, world):
    big = f"key={world.key}&next=/dashboard&pad=" + "x" * 100_000
    r = browser_like.post("/dashboard/sign-in", content=big)
    assert r.status_code == 413 and "too large" in r.text and "set-cookie" not in r.headers

    def chunks():  # no content-length: the stream itself is cut off at the limit
        yield f"key={world.key}&pad=".encode()
        for _ in range(100):
            yield b"x" * 1000

    r = browser_like.post("/dashboard/sign-in", content=chunks())
    assert r.status_code == 413 and "set-cookie" not in r.headers
    ok = browser_like.post("/dashboard/sign-in", content=f"key={world.key}&next=/dashboard/perps")
    assert ok.status_code == 303 and ok.headers["location"] == "/dashboard/perps"
    browser_like.cookies.clear()


def test_every_page_renders_over_the_service_with_a_strict_csp(browser_like, world):
    browser_like.cookies.set(COOKIE, Sessions(SECRET, world.keys).cookie_for(world.keys.authenticate(world.key)))
    try:
        for path in PAGES:
            r = browser_like.get("/dashboard" + path)
            assert r.status_code == 200, (path, r.text[:300])
            assert r.headers["content-security-policy"].startswith("default-src 'self'")
            assert "<script>" not in r.text and " style=" not in r.text, path  # nothing inline for the CSP to refuse
        fragment = browser_like.get("/dashboard/perps", headers={"HX-Request": "true"})
        assert fragment.text.lstrip().startswith("<main") and "<header>" not in fragment.text
        assert browser_like.get("/dashboard/coin/NOPE").status_code == 404
        assert browser_like.get("/dashboard/cohorts/99").status_code == 404
        cell = browser_like.get("/dashboard/heatmap/cell?coin=BTC&segment=1").text
        values = [float(v) for v in re.findall(r'class="value" data-value="([^"]+)"', cell)]
        total = float(re.search(r'id="cell-total" data-value="([^"]+)"', cell).group(1))
        assert values and sum(values) == pytest.approx(total, rel=1e-9)
    finally:
        browser_like.cookies.clear()


def test_a_key_without_the_metrics_scope_sees_no_dashboard(browser_like, world):
    _, key = world.keys.create("orders-only", ["orders"])
    browser_like.cookies.set(COOKIE, Sessions(SECRET, world.keys).cookie_for(key))
    try:
        assert browser_like.get("/dashboard").status_code == 403
    finally:
        browser_like.cookies.clear()


def test_the_stream_announces_each_new_update_once_and_resumes_after_the_last_seen():
    updates = [LatestUpdate(10, 1000, 0), LatestUpdate(10, 1000, 0), LatestUpdate(11, 2000, 0)]
    calls = iter(updates)
    seen: list[LatestUpdate] = []

    def latest():
        seen.append(next(calls, updates[-1]))
        return seen[-1]

    async def collect(last):
        out = []
        ticks = 0

        async def gone():
            nonlocal ticks
            ticks += 1
            return ticks > 4

        async for chunk in sse.updates(latest, last, gone, poll=0):
            out.append(chunk)
        return b"".join(out)

    body = asyncio.run(collect(None))
    assert body.count(b"event: update") == 2 and b"id: 10\n" in body and b"id: 11\n" in body
    calls = iter(updates)
    resumed = asyncio.run(collect(10))
    assert b"id: 10\n" not in resumed and b"id: 11\n" in resumed


@pytest.mark.parametrize("category", ["pnl", "size"])
def test_cohort_migration_counts_each_moved_wallet_once(world, category):
    from hyperscope.dashboard import history

    update = world.service.latest()
    data = history.migration(world.service, update, "1d", category)
    assert data["category"] == category and len(data["segments"]) == 8
    assert all(s.category == category for s in data["segments"])
    in_matrix = sum(c["wallets"] for line in data["matrix"] for c in line["cells"])
    assert in_matrix == data["moved"] <= data["tracked"]
    assert data["tracked"] > 0
    assert all(line["cells"][i]["wallets"] == 0 for i, line in enumerate(data["matrix"]))  # no self-moves


def test_the_liquidation_history_page_shows_the_map_stored_with_the_chosen_update(browser_like, world):
    """The slider's page at a past height shows that update's map: the value in its bins sums to the stored
    bins of that height (and the newest height's to the newest), not today's positions."""
    browser_like.cookies.set(COOKIE, Sessions(SECRET, world.keys).cookie_for(world.keys.authenticate(world.key)))
    try:
        heights = [u.height for u in world.updates]
        for height in (heights[0], heights[-1]):
            page = browser_like.get(f"/dashboard/coin/BTC/liquidations?height={height}").text
            assert f"height {height}" in page
            shown = [float(v) for v in re.findall(r'<td data-value="([^"]+)"', page)]
            stored = world.service.liquidation_map("BTC", height)
            assert shown and sum(shown) == pytest.approx(float(stored["value"].sum()), rel=1e-12)
            stops = re.search(r'data-heights="([^"]+)"', page).group(1).split(",")
            assert [int(h) for h in stops] == heights
        assert "(history)" in browser_like.get(f"/dashboard/coin/BTC/liquidations?height={heights[0]}").text
    finally:
        browser_like.cookies.clear()


def test_pages_data_is_kept_for_a_bounded_number_of_pages_per_update(browser_like, world):
    from hyperscope.dashboard import pages

    browser_like.cookies.set(COOKIE, Sessions(SECRET, world.keys).cookie_for(world.keys.authenticate(world.key)))
    try:
        pages._cache.clear()
        for i in range(pages.PAGE_CACHE_ENTRIES + 5):
            assert browser_like.get(f"/dashboard/cohorts/3?range={i}").status_code == 200
        assert len(pages._cache) == pages.PAGE_CACHE_ENTRIES
        for segment in range(1, pages.CELL_CACHE_ENTRIES + 4):  # a few cells' positions are kept, no more
            assert browser_like.get(f"/dashboard/heatmap/cell?coin=BTC&segment={segment}").status_code == 200
        assert sum(key[0] == "cell.html" for key in pages._cache) == pages.CELL_CACHE_ENTRIES
        assert len(pages._cache) <= pages.PAGE_CACHE_ENTRIES
    finally:
        browser_like.cookies.clear()
