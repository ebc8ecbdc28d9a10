"""The open-positions CSV, downloaded as a user would, is the ground truth every aggregate recomputes from."""

import csv
import io
from collections import defaultdict

import httpx
import pytest

from hyperscope.domain.buckets import size_bucket
from hyperscope.domain.timefmt import iso_ms
from hyperscope.exports import LinkSigner
from tests.api import upstream

SIZE_AXIS = {1, 2, 3, 4, 5, 6, 7, 16}


NUMERIC = (
    "size",
    "value",
    "entryPrice",
    "unrealizedPnl",
    "funding",
    "liquidationPrice",
    "liquidationProgress",
    "crossLeverage",
    "isolatedLeverage",
    "profile_totalEquity",
    "profile_perpEquity",
    "profile_countOpenPositions",
    "profile_pnl",
    "profile_balance",
    "profile_perpPnlSegmentId",
    "profile_sizeSegmentId",
)


def download(http, coin, base=None):
    """Follow the redirect the way `requests.get(r.headers["Location"])` would: the Location alone."""
    redirect = http.get(f"/api/external/positions/open/coin/{coin}", follow_redirects=False)
    assert redirect.status_code == 302, redirect.text
    location = redirect.headers["location"]
    assert location.startswith(f"{base or http.base_url}".rstrip("/") + "/downloads/"), location
    response = httpx.get(location)  # no base URL, no key: the signed, absolute link is enough
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    return location, list(csv.DictReader(io.StringIO(response.text)))


def f(row, key):
    return float(row[key])


def test_every_csv_number_parses_and_balance_is_perp_equity(world, live_server):
    """Audit: liquidationPrice was empty for a quarter of BTC rows, and balance was the raw USD (negative)."""
    for coin in ("BTC", "ETH", "xyz:GOLD"):
        _, rows = download(live_server, coin)
        assert rows
        for row in rows:
            numbers = {k: float(row[k]) for k in NUMERIC}  # raises on an empty or non-numeric field
            assert numbers["profile_balance"] == numbers["profile_perpEquity"]
            if numbers["liquidationPrice"] == 0 and row["side"] == "long":
                # no liquidation price: the long's progress follows the formula with liq = 0
                entry, mark = numbers["entryPrice"], numbers["value"] / numbers["size"]
                expected = min(max(100 * (entry - mark) / entry, 0.0), 100.0)
                assert numbers["liquidationProgress"] == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert any(float(r["liquidationPrice"]) == 0 for c in ("BTC", "ETH") for r in download(live_server, c)[1])


def test_a_main_coin_covers_every_dex_and_a_hip3_coin_only_its_own(world, live_server):
    """Audit: /positions/open/coin/BTC held main-dex BTC only; upstream covers the main dex and every HIP-3 dex."""
    _, rows = download(live_server, "BTC")
    coins = {(r["coin"], r["dex"]) for r in rows}
    assert coins == {("BTC", "main"), ("hyna:BTC", "hyna")}
    _, hip3 = download(live_server, "hyna:BTC")
    assert {(r["coin"], r["dex"]) for r in hip3} == {("hyna:BTC", "hyna")}
    assert sorted(r["id"] for r in hip3) == sorted(r["id"] for r in rows if r["coin"] == "hyna:BTC")


def test_csv_columns_match_upstream(live_server):
    example = upstream.example(
        "positions-and-market-data.md", "/api/external/positions/open/coin/{coin}", marker="CSV content preview"
    )
    _, rows = download(live_server, "BTC")
    assert rows and list(rows[0]) == list(example[0])


def test_every_aggregate_recomputes_from_the_csv(world, live_server):
    latest = world.updates[-1]
    start = iso_ms(latest.time)
    for coin in ("BTC", "xyz:GOLD"):
        _, rows = download(live_server, coin.lower())
        rows = [r for r in rows if r["coin"] == coin]  # BTC's file also holds the HIP-3 dexes' BTC
        assert rows
        longs = [r for r in rows if r["side"] == "long"]
        value = sum(f(r, "value") for r in rows)
        # /positions/coins
        (entry,) = [c for c in live_server.get("/api/external/positions/coins").json() if c["coin"] == coin]
        assert entry["count"] == len(rows) and entry["countLong"] == len(longs)
        assert entry["totalValue"] == pytest.approx(value, rel=1e-9)
        assert entry["totalValueLong"] == pytest.approx(sum(f(r, "value") for r in longs), rel=1e-9)
        # the coin series at this state update
        (metric,) = live_server.get(f"/api/external/position-metrics/coin/{coin}?start={start}").json()["metrics"]
        assert metric["positionCount"] == len(rows)
        assert metric["totalPositionSize"] == pytest.approx(sum(f(r, "size") for r in rows), rel=1e-9)
        assert metric["totalPositionSizeLong"] == pytest.approx(sum(f(r, "size") for r in longs), rel=1e-9)
        assert metric["totalFunding"] == pytest.approx(sum(f(r, "funding") for r in rows), rel=1e-9, abs=1e-6)
        upnl = sum(f(r, "unrealizedPnl") for r in rows)
        assert metric["totalUnrealizedPnl"] == pytest.approx(upnl, rel=1e-9, abs=1e-6)
        # every cohort, on both axes, and every size bucket
        by_segment = defaultdict(list)
        for r in rows:
            by_segment[int(r["profile_sizeSegmentId"])].append(r)
            by_segment[int(r["profile_perpPnlSegmentId"])].append(r)
        for segment, members in by_segment.items():
            url = f"/api/external/position-metrics/coin/{coin}/segment/{segment}?start={start}"
            (row,) = live_server.get(url).json()["metrics"]
            assert row["positionCount"] == len(members)
            assert row["totalPositionValue"] == pytest.approx(sum(f(r, "value") for r in members), rel=1e-9)
            risk = live_server.get(f"/api/external/{segment}/assets/liquidation-risk").json()["items"]
            (item,) = [i for i in risk if i["coin"] == coin]
            close = sum(f(r, "value") for r in members if f(r, "liquidationProgress") >= 75)
            assert item["riskValue"] == pytest.approx(close, rel=1e-9, abs=1e-9)
        buckets = defaultdict(list)
        for r in rows:
            buckets[int(size_bucket([f(r, "value")])[0])].append(r)
        for bucket, members in buckets.items():
            url = f"/api/external/position-metrics/coin/{coin}/position-size-bucket/{bucket}?start={start}"
            (row,) = live_server.get(url).json()["metrics"]
            assert row["positionCount"] == len(members)
            long_value = sum(f(r, "value") for r in members if r["side"] == "long")
            assert row["totalPositionValueLong"] == pytest.approx(long_value, rel=1e-9, abs=1e-9)
        heat = [h for h in live_server.get("/api/external/positions/heatmap").json()["heatmap"] if h["coin"] == coin]
        for s in heat[0]["segments"]:
            assert s["count"] == len(by_segment[s["segmentId"]])


def test_download_links_are_signed_and_expire(world, live_server):
    location, _ = download(live_server, "ETH")
    token = location.rsplit("/", 1)[1]
    body, sig = token.split(".")
    # another signature: one of its middle characters changed (each carries six bits of the MAC; replacing the
    # last ones with "AA" is no change at all when the signature happens to end in "AA", 1 time in 1,024)
    middle = len(sig) // 2
    forged = sig[:middle] + ("B" if sig[middle] == "A" else "A") + sig[middle + 1 :]
    assert forged != sig
    for bad in (f"{body}x.{sig}", f"{body}.{forged}", "..%2F..%2Fetc%2Fpasswd", "nothing"):
        response = live_server.get(f"/downloads/{bad}")
        assert response.status_code in (403, 404) and response.json()["error"] in ("forbidden", "not_found")
    signer = LinkSigner(world.service.cursors.signer.for_purpose("link", -1))
    file_id, _ = world.app.state.hyperscope.links.verify(token)
    expired = signer.issue(file_id, "x.csv")
    response = live_server.get(f"/downloads/{expired}")
    assert response.status_code == 403 and "expired" in response.json()["message"]


def test_open_positions_needs_a_key_and_a_known_coin(live_server):
    assert live_server.get("/api/external/positions/open/coin/BTC", headers={"Authorization": ""}).status_code == 401
    missing = live_server.get("/api/external/positions/open/coin/NOPE", follow_redirects=False)
    assert missing.status_code == 404 and "NOPE" in missing.json()["message"]
