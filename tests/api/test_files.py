"""Every export, order snapshot and leaderboard file, downloaded as a user would (following absolute links),
recomputes from the open-positions CSV, from /positions or from the stored inputs of the same state update."""

import csv
import io
from collections import defaultdict

import httpx
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from hyperscope.api import create_app
from hyperscope.domain.buckets import size_bucket
from hyperscope.domain.cohorts import SEGMENT_IDS
from hyperscope.domain.timefmt import iso_ms
from hyperscope.store.base import Series
from tests.api.conftest import api_config

E = "/api/external"


def fetch(http, path, **params):
    """GET a file route, follow its 302 or downloadUrl with a plain client (no base URL, no key)."""
    r = http.get(E + path, params=params, follow_redirects=False)
    if r.status_code == 302:
        url = r.headers["location"]
    else:
        assert r.status_code == 200, r.text
        url = r.json()["downloadUrl"]
    assert url.startswith("http://127.0.0.1:"), url  # absolute: usable as it is
    got = httpx.get(url)
    assert got.status_code == 200, got.text
    fmt = params.get("format", "csv" if "open/coin" in path else "json")
    if fmt == "json":
        return got.json()
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(got.text)))
    return pq.read_table(io.BytesIO(got.content))


def csv_rows(http, coin):
    return [r for r in fetch(http, f"/positions/open/coin/{coin}") if r["coin"] == coin]


def v(row, key):
    return float(row[key])


@pytest.mark.parametrize("coin", ["BTC", "xyz:GOLD"])
def test_breakdowns_and_heatmap_recompute_from_the_csv(world, live_server, coin):
    rows = csv_rows(live_server, coin)
    assert rows
    by_size = fetch(live_server, f"/exports/coins/{coin}/position-breakdown-by-size")
    same = fetch(live_server, f"/exports/coins/{coin}/positions")
    assert same == by_size  # upstream's `positions` export is the by-size breakdown
    buckets = defaultdict(list)
    for r in rows:
        buckets[int(size_bucket([v(r, "value")])[0])].append(r)
    assert [b["sizeSegmentId"] for b in by_size["breakdownBySize"]] == list(range(1, 11))
    for b in by_size["breakdownBySize"]:
        members = buckets[b["sizeSegmentId"]]
        value = sum(v(r, "value") for r in members)
        long = sum(v(r, "value") for r in members if r["side"] == "long")
        assert b["positionCount"] == len(members)
        assert b["totalPositionValue"] == pytest.approx(value, rel=1e-9, abs=1e-9)
        assert b["totalPositionValueLong"] == pytest.approx(long, rel=1e-9, abs=1e-9)
        close = sum(v(r, "value") for r in members if v(r, "liquidationProgress") >= 75)
        assert b["valueCloseToLiquidation"] == pytest.approx(close, rel=1e-9, abs=1e-9)
        assert b["bias"] == (pytest.approx(long / value, rel=1e-12) if value else None)
    by_cohort = fetch(live_server, f"/exports/coins/{coin}/position-breakdown-by-cohort")
    for item in by_cohort["breakdownByCohort"]:
        axis = "profile_sizeSegmentId" if item["segment"]["category"] == "size" else "profile_perpPnlSegmentId"
        members = [r for r in rows if int(r[axis]) == item["segmentId"]]
        assert item["positionCount"] == len(members)
        assert item["totalPositionValue"] == pytest.approx(sum(v(r, "value") for r in members), rel=1e-9, abs=1e-9)
    # the heatmap, recomputed here with a plain loop over the CSV rows
    heat = fetch(live_server, f"/exports/coins/{coin}/liquidation-heatmap")
    mark = heat["markPrice"]
    assert mark == pytest.approx(v(rows[0], "value") / v(rows[0], "size"), rel=1e-9)
    width = mark / 100
    value, count = [0.0] * 100, [0] * 100
    per_segment = defaultdict(float)
    for r in rows:
        liq = v(r, "liquidationPrice")
        if liq > 0 and 0.5 * mark <= liq <= 1.5 * mark:
            i = min(int((liq - 0.5 * mark) // width), 99)
            value[i] += v(r, "value")
            count[i] += 1
            per_segment[(i, int(r["profile_sizeSegmentId"]))] += v(r, "value")
            per_segment[(i, int(r["profile_perpPnlSegmentId"]))] += v(r, "value")
    assert len(heat["heatmap"]) == 100
    for i, b in enumerate(heat["heatmap"]):
        assert b["priceBinIndex"] == i and b["priceBinStart"] == pytest.approx(mark * (0.5 + i / 100))
        assert b["positionsCount"] == count[i]
        assert b["liquidationValue"] == pytest.approx(value[i], rel=1e-9, abs=1e-9)
        if count[i]:
            best = max(SEGMENT_IDS, key=lambda s: (per_segment[(i, s)], -s))
            assert b["mostImpactedSegment"] == best
        else:
            assert b["mostImpactedSegment"] is None
    assert sum(count) > 0


def test_series_exports_end_at_the_newest_state_update(world, live_server):
    latest = world.updates[-1]
    rows = csv_rows(live_server, "BTC")
    metrics = fetch(live_server, "/exports/coins/btc/position-metrics")
    first = dict(zip(metrics["metrics"]["columns"], metrics["metrics"]["data"][0], strict=True))
    assert first["timestamp"] == iso_ms(latest.time) and metrics["coin"] == "BTC" and "coin" not in first
    assert first["positionCount"] == len(rows)
    assert first["totalPositionValue"] == pytest.approx(sum(v(r, "value") for r in rows), rel=1e-9)
    times = [row[0] for row in metrics["metrics"]["data"]]
    # the samples are stamped with their even UTC hour, the latest row with its own time
    assert times == sorted(times, reverse=True) and all(
        t.endswith("00:00.000Z") and int(t[11:13]) % 2 == 0 for t in times[1:]
    )
    seg = fetch(live_server, "/exports/coins/BTC/segment-metrics")
    for entry in seg["segments"]:
        s = entry["segment"]
        axis = "profile_sizeSegmentId" if s["category"] == "size" else "profile_perpPnlSegmentId"
        members = [r for r in rows if int(r[axis]) == s["id"]]
        data = entry["metrics"]["data"]
        if members:
            assert data[0][0] == iso_ms(latest.time) and data[0][1] == len(members)
    equity = fetch(live_server, "/exports/total-wallets-equity-chart-data")
    totals = world.store._dicts(
        "SELECT sum(total_equity) t, sum(perp_equity) p, sum(spot_equity) s, "
        "sum(staking_equity) k, sum(vault_equity) va FROM wallets",
        [],
    )[0]
    newest = equity["history"]["data"][-1]
    assert newest[0] == iso_ms(latest.time)
    assert newest[1:] == pytest.approx([totals["t"], totals["p"], totals["s"], totals["k"], totals["va"]], rel=1e-9)
    # the ATH is the highest total of every kept state update (the history shows one per 2 hours)
    highest = world.store._dicts("SELECT max(total) m FROM metrics_wallets_equity", [])[0]["m"]
    assert equity["athData"]["data"][0] == highest >= max(row[1] for row in equity["history"]["data"])
    bias = fetch(live_server, "/exports/segments-bias-charts-data-24h")
    assert sorted(bias, key=int) == [str(s) for s in SEGMENT_IDS]
    for segment in (1, 9):
        history = live_server.get(
            f"{E}/segments/{segment}/bias-history",
            params={"start": iso_ms(latest.time), "positionRecencyTimeframe": "24h"},
        ).json()
        assert bias[str(segment)]["data"][-1] == [history["history"][0][0], history["history"][0][1]]


def test_the_24h_comparison_and_the_period_leaderboards(february):
    world, http = february
    latest = world.updates[-1]
    day_ago = next(u for u in world.updates if u.time == latest.time - 86_400_000)
    by_size = fetch(http, "/exports/coins/ETH/position-breakdown-by-size")
    past = world.store.series_at(Series("coin_bucket", coin="ETH"), day_ago.height)
    for b in by_size["breakdownBySize"]:
        row = [p for p in past if p["size_bucket"] == b["sizeSegmentId"]]
        assert b["pastPositionCount"] == (row[0]["position_count"] if row else 0)
    now = dict(zip(latest.wallets.column("address").to_pylist(), latest.wallets.column("pnl").to_pylist(), strict=True))
    then = dict(
        zip(day_ago.wallets.column("address").to_pylist(), day_ago.wallets.column("pnl").to_pylist(), strict=True)
    )
    board = fetch(http, "/leaderboards/perp-pnl/day/download")
    assert board["period"] == "day" and board["totalCount"] == len(board["data"]) > 0
    pnls = [row["pnl"] for row in board["data"]]
    assert pnls == sorted(pnls, reverse=True) and [r["rank"] for r in board["data"]] == list(range(1, len(pnls) + 1))
    for row in board["data"][:50] + board["data"][-50:]:
        assert row["pnl"] == pytest.approx(now[row["address"]] - then[row["address"]], rel=1e-9, abs=1e-6)
    everything = fetch(http, "/leaderboards/perp-pnl/all/download")
    for row in everything["data"][:20]:
        assert row["pnl"] == pytest.approx(now[row["address"]], rel=1e-12)
    # a wallet's open values in the leaderboard are its open positions in /positions
    top = board["data"][0]
    open_rows = http.get(f"{E}/positions", params={"address": top["address"], "open": "true"}).json()["positions"]
    assert top["openValue"] == pytest.approx(sum(p["positionValue"] for p in open_rows), rel=1e-9, abs=1e-9)
    assert fetch(http, "/leaderboards/perp-pnl/24h/download")["data"] == board["data"]  # the upstream alias
    parquet = fetch(http, "/leaderboards/perp-pnl/week/download", format="parquet")
    assert parquet.column_names[:3] == ["rank", "address", "pnl"] and parquet.num_rows > 0
    # 40 hours of history: a day is whole, a week is not, and says so (in every format), never a week that
    # silently equals the day
    assert board["complete"] and board["start"] == board["periodStart"] == iso_ms(latest.time - 86_400_000)
    week = fetch(http, "/leaderboards/perp-pnl/week/download")
    first_mark = world.store.first_mark_time()
    assert not week["complete"] and week["start"] == iso_ms(first_mark) != week["periodStart"]
    assert week["periodStart"] == iso_ms(latest.time - 7 * 86_400_000) and week["data"] != board["data"]
    assert set(parquet.column("start").to_pylist()) == {iso_ms(first_mark)}
    assert everything["complete"] and everything["start"] is None


def test_order_snapshots_follow_the_documented_rules(world, live_server):
    times = [u.time for u in world.updates]
    at = times[5]  # 15-minute updates: every one is on a 5-minute boundary
    files = fetch(live_server, f"/orders/5m-snapshots/{iso_ms(at)}/download")
    expected = world.updates[5].orders
    assert {(o["oid"], o["sz"]) for o in files} == set(
        zip(expected.column("oid").to_pylist(), expected.column("sz").to_pylist(), strict=True)
    )
    assert {o["snapshotTs"] for o in files} == {iso_ms(at)}
    between = fetch(live_server, f"/orders/5m-snapshots/{iso_ms(at + 300_000)}/download")
    assert {o["oid"] for o in between} == {o["oid"] for o in files}  # the newest update at or before it
    for text, needle in (
        (iso_ms(at + 60_000), "5-minute boundary"),
        ("2099-01-01T00:00:00Z", "future"),
        (iso_ms(times[0] - 300_000), "before the first"),
        ("yesterday", "ISO 8601"),
    ):
        r = live_server.get(f"{E}/orders/5m-snapshots/{text}/download")
        assert r.status_code == 400 and needle in r.json()["message"], (text, r.text)
    latest = fetch(live_server, "/orders/5m-snapshots/coins/eth/download")
    newest = world.updates[-1].orders
    eth = {
        o
        for o, c in zip(newest.column("oid").to_pylist(), newest.column("coin").to_pylist(), strict=True)
        if c == "ETH"
    }
    assert {o["coin"] for o in latest} == {"ETH"} and {o["oid"] for o in latest} == eth
    table = fetch(live_server, "/orders/5m-snapshots/coins/ETH/download", format="parquet")
    assert table.num_rows == len(latest)


def test_every_format_holds_the_same_numbers_and_a_file_is_built_once_per_state_update(world, live_server):
    doc = fetch(live_server, "/exports/coins/BTC/position-breakdown-by-size")
    rows = fetch(live_server, "/exports/coins/BTC/position-breakdown-by-size", format="csv")
    table = fetch(live_server, "/exports/coins/BTC/position-breakdown-by-size", format="parquet")
    assert [float(r["totalPositionValue"]) for r in rows] == [b["totalPositionValue"] for b in doc["breakdownBySize"]]
    assert table.column("totalPositionValue").to_pylist() == [b["totalPositionValue"] for b in doc["breakdownBySize"]]
    positions = fetch(live_server, "/positions/open/coin/ETH", format="parquet")
    assert positions.num_rows == len(fetch(live_server, "/positions/open/coin/ETH"))
    links = [
        live_server.get(f"{E}/exports/coins/SOL/segment-metrics", follow_redirects=False).headers["location"]
        for _ in range(2)
    ]
    ids = {world.app.state.hyperscope.links.verify(link.rsplit("/", 1)[1])[0] for link in links}
    assert len(ids) == 1  # the second request reused the file


def test_links_start_with_the_public_url_when_one_is_set(world, tmp_path):
    config = api_config(tmp_path, public_url="https://hs.example.com/api-root")
    with TestClient(create_app(world.service, world.keys, config)) as c:
        c.headers.update(world.headers())
        r = c.get(f"{E}/exports/coins/BTC/positions", follow_redirects=False)
        assert r.status_code == 302 and r.headers["location"].startswith("https://hs.example.com/api-root/downloads/")
        r = c.get(f"{E}/leaderboards/perp-pnl/all/download")
        assert r.json()["downloadUrl"].startswith("https://hs.example.com/api-root/downloads/")


@pytest.mark.parametrize(
    ("path", "status", "needle"),
    [
        ("/exports/coins/BTC/nothing", 404, "unknown export"),
        ("/exports/coins/NOPE/positions", 404, "NOPE"),
        ("/exports/coins/BTC/positions?format=xlsx", 400, "format"),
        ("/leaderboards/perp-pnl/year/download", 400, "period"),
        ("/positions/open/coin/BTC?format=pdf", 400, "format"),
    ],
)
def test_bad_file_requests_are_clear_4xx(live_server, path, status, needle):
    r = live_server.get(E + path, follow_redirects=False)
    assert r.status_code == status and needle in r.json()["message"]


def test_long_and_short_values_are_equal_exactly_where_sizes_are(world, live_server):
    """Audit: long and short values per coin differed in the last bits."""
    coins = live_server.get(f"{E}/positions/coins").json()
    assert coins and all(c["totalValueLong"] == c["totalValueShort"] for c in coins)
    general = live_server.get(f"{E}/position-metrics/general", params={"start": "2020-01-01"}).json()["metrics"]
    assert all(m["openInterestLong"] == m["openInterestShort"] for m in general)


def test_live_perp_volume_follows_market_time_not_the_wall_clock():
    """Audit: live updates seconds apart each simulate 15 minutes, so a wall-clock 24 h window grew without bound."""
    from hyperscope.sources.simulator import Simulator, preset
    from tests.factories import T0

    sim = Simulator(preset("tiny", seed=2), genesis_ms=T0)
    for k in range(1, 97):  # a day of backfill at the 15-minute cadence
        update = sim.step(T0 + k * 900_000)
    day = update.markets.column("day_ntl_vlm").to_numpy().sum()
    for k in range(1, 201):  # then 200 live updates 5 seconds apart
        update = sim.step(T0 + 96 * 900_000 + k * 5_000)
    live = update.markets.column("day_ntl_vlm").to_numpy().sum()
    assert 0.5 * day < live < 1.5 * day
    assert len(sim.volume_ring) == 96
