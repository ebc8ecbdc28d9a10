"""Nothing derived from a request's credentials is cached or echoed, keys go only where they are documented,
and no client-chosen Host decides where a link points."""

from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import World

AFR = "futures_aggregate_funding_rate_all_margin_8h_period"
START = "2020-01-01"
# every keyed GET route with parameters that make it answer 200 (or 302), page-sized so /v4 pages
ROUTES = [
    f"/api/external/position-metrics/general?start={START}&limit=2",
    f"/api/external/metrics/perp-volume?start={START}&limit=2",
    "/api/external/positions/coins",
    "/api/external/positions?limit=2",
    f"/api/external/position-metrics/coin/BTC?start={START}&limit=2",
    f"/api/external/position-metrics/coin/BTC/segment/1?start={START}&limit=2",
    f"/api/external/position-metrics/coin/BTC/position-size-bucket/1?start={START}&limit=2",
    "/api/external/segments",
    "/api/external/segments/1/bias-history",
    "/api/external/1/assets/liquidation-risk",
    "/api/external/positions/heatmap",
    "/api/external/exports/total-wallets-equity-chart-data",
    "/api/external/exports/segments-bias-charts-data-24h",
    "/api/external/exports/coins/BTC/liquidation-heatmap",
    "/api/external/positions/open/coin/BTC",
    "/api/external/orders/5m-snapshots/coins/BTC/download",
    "/api/external/leaderboards/perp-pnl/week/download",
    f"/v4/timeseries/asset-metrics?assets=btc,eth&metrics={AFR}&frequency=1h&page_size=1",
    f"/v4/timeseries/exchange-asset-metrics?exchange_assets=hyperliquid-btc&metrics={AFR}&frequency=1h&page_size=1",
    "/v4/timeseries/market-funding-rates?markets=hyperliquid-BTC-future&page_size=1",
    "/v4/catalog-v2/asset-metrics",
    "/v4/catalog-v2/exchange-asset-metrics",
    "/v4/catalog-v2/market-funding-rates",
    "/v4/reference-data/asset-metrics",
]


@pytest.fixture(scope="module")
def two_keys(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("two-keys") / "store.duckdb", steps=8)
    second, _ = world.keys.create("second")
    with TestClient(world.app, follow_redirects=False) as client:
        yield world, client, (world.key, second)
    world.keys.store.close()
    world.store.close()


def _secret(token):
    return token.split("_", 2)[2]


def _sent(client, path, key, how):
    if how == "header":
        return client.get(path, headers={"Authorization": f"Bearer {key}"})
    return client.get(f"{path}{'&' if '?' in path else '?'}api_key={key}")


@pytest.mark.parametrize("path", ROUTES)
def test_two_keys_get_the_same_answer_and_neither_sees_a_key(two_keys, path):
    world, client, keys = two_keys
    ways = ["header", "query"] if path.startswith("/v4/") else ["header"]
    answers = []
    for how in ways:
        for key in keys:  # the first answer is built and cached, the second comes from the cache
            r = _sent(client, path, key, how)
            assert r.status_code in (200, 302), (path, r.status_code, r.text[:200])
            text = r.text + r.headers.get("location", "") + r.headers.get("x-next-page-url", "")
            for any_key in keys:
                assert _secret(any_key) not in text, (path, how)
                assert any_key.split("_")[1] not in r.headers.get("location", ""), path
            if r.status_code == 200 and "downloadUrl" not in r.text:
                answers.append(r.content)
    assert len(set(answers)) <= 1, path


def test_a_v4_next_page_url_carries_the_query_but_not_the_key(two_keys):
    _, client, keys = two_keys
    body = _sent(client, ROUTES[17], keys[0], "query").json()
    query = parse_qs(urlsplit(body["next_page_url"]).query)
    assert "api_key" not in query
    assert query["assets"] == ["btc,eth"] and query["next_page_token"] == [body["next_page_token"]]


def test_api_key_in_the_query_is_refused_on_hypertracker_routes(two_keys):
    _, client, keys = two_keys
    r = client.get("/api/external/positions/coins", params={"api_key": keys[0]})
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized" and "Authorization" in r.json()["message"]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("evil.example.com", "http://testserver:80"),  # not allowed: the server's own address
        ("localhost:8000", "http://localhost:8000"),
        ("127.0.0.1:9", "http://127.0.0.1:9"),
        ("[::1]:8000", "http://[::1]:8000"),
        ("hs.example.org", "http://hs.example.org"),  # in allowed_hosts
        ("hs.example.org.evil.com", "http://testserver:80"),
        ("localhost:8000@evil.com", "http://testserver:80"),
    ],
)
def test_link_hosts_come_from_the_allow_list_never_from_any_host(tmp_path, host, expected):
    world = World(tmp_path / "store.duckdb", steps=2, config={"allowed_hosts": ("hs.example.org",)})
    try:
        with TestClient(world.app, follow_redirects=False) as client:
            r = client.get(
                "/api/external/leaderboards/perp-pnl/day/download", headers={**world.headers(), "Host": host}
            )
            assert r.status_code == 200
            assert r.json()["downloadUrl"].startswith(expected + "/downloads/"), r.json()
            r = client.get(
                "/api/external/exports/segments-bias-charts-data-24h", headers={**world.headers(), "Host": host}
            )
            assert r.headers["location"].startswith(expected + "/downloads/")
    finally:
        world.keys.store.close()
        world.store.close()


def test_connections_that_never_complete_a_request_are_closed(world):
    """An idle connection, one trickling its headers and one idle after its first answer all close within the
    header deadline, while a well-behaved client is served on the same server."""
    import socket
    import time

    from hyperscope.api.server import JSONErrorProtocol
    from tests.api.conftest import serving

    class Quick(JSONErrorProtocol):
        header_seconds = 0.5

    def closed_within(sock, seconds, trickle=b""):
        sock.settimeout(0.1)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if trickle:
                try:
                    sock.sendall(trickle)
                except OSError:
                    return True
            try:
                if sock.recv(65536) == b"":
                    return True
            except TimeoutError:
                continue
            except OSError:
                return True
        return False

    with serving(world.app, world.headers(), protocol=Quick) as http:
        address = (http.base_url.host, http.base_url.port)
        idle, trickling, kept = (socket.create_connection(address) for _ in range(3))
        trickling.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert kept.recv(65536).startswith(b"HTTP/1.1 ")
        assert http.get("/api/external/segments").status_code == 200
        assert closed_within(idle, 10)
        assert closed_within(trickling, 10, trickle=b"a")
        assert closed_within(kept, 10)
        for s in (idle, trickling, kept):
            s.close()
