"""The same simulated market ingested into DuckDB and into PostgreSQL is served identically: every JSON route
and every downloaded file, byte for byte after parsing (one service and one set of formulas over two stores)."""

import csv
import io

import httpx
import pytest

from tests.api.conftest import World, serving

E = "/api/external"
START = "2020-01-01T00:00:00Z"
JSON_PATHS = [
    f"{E}/positions/coins",
    f"{E}/position-metrics/general?start={START}&limit=50",
    f"{E}/position-metrics/coin/BTC?start={START}&limit=50",
    f"{E}/position-metrics/coin/ETH/segment/3?start={START}&positionRecencyTimeframe=24h",
    f"{E}/position-metrics/coin/BTC/position-size-bucket/4?start={START}",
    f"{E}/metrics/perp-volume?start={START}",
    f"{E}/segments",
    f"{E}/segments/5/bias-history?start={START}",
    f"{E}/positions/heatmap",
    f"{E}/3/assets/liquidation-risk",
    f"{E}/positions?start={START}&coin=BTC&limit=100",
    f"{E}/positions?start={START}&orderBy=pnl&order=desc&limit=50",
    f"{E}/positions?start={START}&open=false&orderBy=closeTime&limit=50",
    "/v4/timeseries/asset-metrics?assets=btc,eth&metrics=futures_aggregate_funding_rate_all_margin_8h_period"
    "&frequency=1h&page_size=100",
    "/v4/timeseries/market-funding-rates?markets=hyperliquid-BTC-future&page_size=100",
]
FILE_PATHS = [
    f"{E}/positions/open/coin/BTC",
    f"{E}/exports/total-wallets-equity-chart-data",
    f"{E}/exports/segments-bias-charts-data-24h",
    f"{E}/exports/coins/BTC/position-metrics",
    f"{E}/exports/coins/ETH/position-breakdown-by-cohort",
    f"{E}/exports/coins/BTC/liquidation-heatmap",
    f"{E}/exports/coins/BTC/segment-metrics",
    f"{E}/leaderboards/perp-pnl/all/download",
    f"{E}/leaderboards/perp-pnl/day/download",
]


@pytest.fixture(scope="module")
def both(tmp_path_factory, pg_server):
    worlds = []
    for name in ("duckdb", "postgresql"):
        folder = tmp_path_factory.mktemp(name)
        target = pg_server.create_database("agree") if name == "postgresql" else None
        worlds.append(World(folder / "store.duckdb", steps=10, target=target))
    servers = [serving(w.app, w.headers()) for w in worlds]
    clients = [s.__enter__() for s in servers]
    yield worlds, clients
    for s in servers:
        s.__exit__(None, None, None)
    for w in worlds:
        w.keys.store.close()
        w.store.close()


def download(http, path):
    r = http.get(path, follow_redirects=False)
    url = r.headers["location"] if r.status_code == 302 else r.json()["downloadUrl"]
    got = httpx.get(url)
    assert got.status_code == 200, got.text
    if "open/coin" in path:
        return list(csv.DictReader(io.StringIO(got.text)))
    return got.json()


@pytest.mark.parametrize("path", JSON_PATHS)
def test_json_routes_answer_alike_on_both_backends(both, path):
    _, (duck, pg) = both
    a, b = duck.get(path), pg.get(path)
    assert a.status_code == b.status_code == 200, (a.text[:200], b.text[:200])
    left, right = a.json(), b.json()
    if isinstance(left, dict) and "end=" not in path:  # a window that ends "now" echoes the request's clock
        left.pop("end", None), right.pop("end", None)
    if isinstance(left, dict) and left.get("nextCursor"):  # signed with an expiry in whole seconds: may differ
        assert bool(right.get("nextCursor"))
        left.pop("nextCursor"), right.pop("nextCursor")
    for rows in (left, right):  # when each store received the rows: the two ingests ran at different moments
        for row in rows.get("data", []) if isinstance(rows, dict) else []:
            row.pop("database_time", None)
    assert left == right


@pytest.mark.parametrize("path", FILE_PATHS)
def test_files_hold_the_same_rows_on_both_backends(both, path):
    _, (duck, pg) = both
    # the leaderboards sum each wallet's open values in SQL, whose order of addition is the backend's own:
    # those sums may differ in the last bits, nothing else may
    assert approx(download(duck, path)) == download(pg, path)


def approx(value):
    if isinstance(value, dict):
        return {k: approx(v) for k, v in value.items()}
    if isinstance(value, list):
        return [approx(v) for v in value]
    return pytest.approx(value, rel=1e-12, abs=1e-9) if isinstance(value, float) else value


def test_the_order_snapshot_is_the_same_on_both_backends(both):
    worlds, (duck, pg) = both
    latest = worlds[0].store.latest()
    at = latest.time - latest.time % 300_000
    from hyperscope.domain.timefmt import iso_ms

    path = f"{E}/orders/5m-snapshots/{iso_ms(at)}/download"
    rows = download(duck, path)
    assert rows == download(pg, path) and len(rows) > 0


def test_the_dashboards_history_reads_agree_across_stores(both):
    """The liquidation map at every kept update, the slider's stops and both cohort migrations are the same
    numbers over DuckDB and PostgreSQL (schema 7's stored bins and size-cohort marks)."""
    from hyperscope.dashboard import history

    (duck, pg), _ = both
    stops = [w.service.kept_updates(100) for w in (duck, pg)]
    assert stops[0] == stops[1] and len(stops[0]) == 10
    for height in stops[0]:
        maps = [w.service.liquidation_map("BTC", height) for w in (duck, pg)]
        assert maps[0]["mark"] == maps[1]["mark"] > 0
        for field in ("value", "count", "segment", "start"):
            assert maps[0][field].tolist() == pytest.approx(maps[1][field].tolist(), rel=1e-12)
    assert maps[0]["value"].sum() > 0
    for category in ("pnl", "size"):
        moved = [history.migration(w.service, w.service.latest(), "1d", category) for w in (duck, pg)]
        assert moved[0]["tracked"] == moved[1]["tracked"] > 0 and moved[0]["moved"] == moved[1]["moved"]
        for a, b in zip(moved[0]["matrix"], moved[1]["matrix"], strict=True):
            assert [c["wallets"] for c in a["cells"]] == [c["wallets"] for c in b["cells"]]
            # the wallets come in each store's own order: their values sum in another order
            assert [c["value"] for c in a["cells"]] == pytest.approx([c["value"] for c in b["cells"]], rel=1e-9)


def _pages(http, **params):
    rows, cursor = [], None
    while True:
        r = http.get(f"{E}/positions", params={**params, **({"nextCursor": cursor} if cursor else {})})
        assert r.status_code == 200, (params, r.text[:300])
        got = r.json()
        rows += got["positions"]
        cursor = got.get("nextCursor")
        if not cursor:
            return rows


def test_position_history_pages_agree_across_stores(both):
    """Each store has its own plan for /positions (PostgreSQL reads open positions alone, or through their
    lifecycles for an address): every filter, order and page boundary gives the same records on both."""
    _, (duck, pg) = both
    some = duck.get(f"{E}/positions", params={"start": START, "limit": 60}).json()["positions"]
    addresses = sorted({p["address"] for p in some})
    shapes = [  # (query, at least this many records: most span several pages of 3)
        ({"coin": "BTC", "orderBy": "pnl", "order": "desc"}, 4),
        ({"coin": "ETH", "orderBy": "openTime"}, 4),
        ({"orderBy": "value", "order": "desc", "open": "true"}, 4),
        ({"address": addresses[0]}, 1),
        ({"address": ",".join(addresses[:8]), "orderBy": "pnl"}, 4),
        ({"segmentId": 3, "orderBy": "size", "order": "desc"}, 4),
    ]
    for shape, least in shapes:
        left, right = (_pages(http, start=START, limit=3, **shape) for http in (duck, pg))
        assert left == right, shape
        assert len(left) >= least, shape
