"""Operations hardening of the API: strict ids and declared scopes, honest health, bounded caches and
exports, and clean answers at the HTTP edges."""

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from hyperscope.api import create_app
from hyperscope.domain.timefmt import iso_ms
from hyperscope.ingest import Ingestor
from hyperscope.pipeline import IngestStatus
from hyperscope.service import CursorCodec, Service
from hyperscope.service.keys import SCOPES
from hyperscope.signing import Signer
from hyperscope.sources.simulator import Simulator, preset
from hyperscope.store import open_store
from tests.api.conftest import api_config
from tests.factories import T0
from tests.process import in_one_minute

START = iso_ms(0)
NOT_IDS = ["+1", "%2B1", "%201", "1_0", "01", "%D9%A1", "%201%20", "1.0", "0x1", "-1", "1e0", "%EF%BC%91"]


def app_with(world, tmp_path, ingest=None, **config):
    return create_app(world.service, world.keys, api_config(tmp_path, **config), ingest=ingest)


@pytest.mark.parametrize("text", NOT_IDS)
def test_an_id_in_a_path_is_parsed_once_strictly_by_the_route_that_authorizes(world, client, text):
    metrics_only = world.headers(world.metrics_only)
    for path in (f"/api/external/{text}/assets/liquidation-risk", f"/api/external/segments/{text}/bias-history"):
        denied = client.get(path, headers=metrics_only)
        assert denied.status_code == 403 and denied.json()["error"] == "forbidden", path  # scope of the route
        unknown = client.get(path)
        assert unknown.status_code == 404 and unknown.json()["error"] == "not_found", path  # never segment 1
    for path in (
        f"/api/external/position-metrics/coin/BTC/segment/{text}?start={START}",
        f"/api/external/position-metrics/coin/BTC/position-size-bucket/{text}?start={START}",
    ):
        assert client.get(path).status_code == 404, path


def test_the_canonical_id_still_works(world, client):
    assert client.get("/api/external/1/assets/liquidation-risk").status_code == 200
    assert (
        client.get("/api/external/16/assets/liquidation-risk", headers=world.headers(world.metrics_only)).status_code
        == 403
    )


def _routes(routes):
    for route in routes:
        inner = getattr(route, "original_router", None)  # FastAPI keeps included routers whole
        yield from _routes(inner.routes) if inner is not None else [route]


def test_every_keyed_route_declares_its_scope(world):
    from hyperscope.api.auth import is_public

    routes = [r for r in _routes(world.app.routes) if isinstance(r, APIRoute) and not is_public(r.path)]
    assert len(routes) == 25  # 18 HyperTracker and 7 Coin Metrics routes: none public, each with its scope
    for route in routes:
        assert getattr(route, "required_scope", None) in SCOPES, route.path


def test_health_is_ok_only_when_fresh_and_ingesting(world, tmp_path):
    status = IngestStatus(state="running")
    with TestClient(app_with(world, tmp_path, ingest=status)) as c:
        ok = c.get("/health")
        assert ok.status_code == 200 and ok.json()["status"] == "ok"
        status.fail("the store failed (FatalException)")
        failed = c.get("/health")
        assert failed.status_code == 503
        assert failed.json()["status"] == "ingest_failed"
        assert failed.json()["ingest"]["reason"] == "the store failed (FatalException)"
    with TestClient(app_with(world, tmp_path, stale_after_seconds=1.0)) as c:
        stale = c.get("/health")  # the world's updates are stamped in 2026-01
        assert stale.status_code == 503 and stale.json()["status"] == "stale"
        assert stale.json()["lagSeconds"] > 1.0 and stale.json()["ingest"] is None


def test_health_of_an_empty_store_is_503_and_no_response_names_a_file(world, tmp_path):
    store = open_store(tmp_path / "empty.duckdb")
    service = Service(store, CursorCodec(Signer(b"s" * 32, "cursor", 60)))
    app = create_app(service, world.keys, api_config(tmp_path, stale_after_seconds=2700.0))
    with TestClient(app) as c:
        empty = c.get("/health")
        assert empty.status_code == 503 and empty.json()["status"] == "empty"
        assert str(tmp_path) not in empty.text
        Ingestor(store).ingest(Simulator(preset("tiny", seed=2), genesis_ms=T0).step(T0 + 900_000))
        assert c.get("/health").json()["status"] == "stale"  # 2026-01 is long ago
        store._con.close()  # the store breaks under a running server
        broken = c.get("/api/external/positions/coins", headers=world.headers())
        assert broken.status_code == 503 and broken.json()["error"].startswith("store_")
        assert str(tmp_path) not in broken.text and ".duckdb" not in broken.text


def test_the_cache_keys_on_what_a_route_reads_and_stays_within_its_bytes(world, tmp_path):
    app = app_with(world, tmp_path, cache_max_bytes=64 * 1024)
    cache = app.state.hyperscope.cache
    with TestClient(app, headers=world.headers()) as c:
        for _ in range(1_200):
            assert c.get("/api/external/positions/coins").status_code == 200
        assert len(cache) == 1 and cache.hits == 1_199
        junk = c.get("/api/external/positions/coins?junk=1")  # a parameter the route does not read: a 400
        assert junk.status_code == 400 and "junk" in junk.json()["message"] and len(cache) == 1
        for i in range(1, 200):
            c.get(f"/api/external/position-metrics/general?start={START}&limit={i}")
            assert cache.bytes <= 64 * 1024
        assert 1 < len(cache) < 199  # older entries made room for newer ones


def test_cache_entries_expire_and_a_new_state_update_empties_the_cache(world, tmp_path):
    app = app_with(world, tmp_path)
    cache = app.state.hyperscope.cache
    cache.ttl = 0.0
    with TestClient(app, headers=world.headers()) as c:
        c.get("/api/external/segments")
        c.get("/api/external/positions/coins")
        assert len(cache) <= 1  # the first entry had expired when the second came in
        cache.ttl = 60.0
        c.get("/api/external/segments")
        assert len(cache) >= 1
        cache.get_or_build(-1, ("another height",), lambda: {})
        assert len(cache) == 1 and cache.bytes < 1024


def _file_of(app, response):
    token = response.headers["location"].rsplit("/", 1)[1]
    return app.state.hyperscope.links.verify(token)[0]


def test_an_export_is_built_once_per_state_update_and_shared(world, tmp_path):
    app = app_with(world, tmp_path)
    with TestClient(app, headers=world.headers(), follow_redirects=False) as c:
        first = c.get("/api/external/positions/open/coin/BTC")
        second = c.get("/api/external/positions/open/coin/btc")
        assert first.status_code == second.status_code == 302
        assert _file_of(app, first) == _file_of(app, second)  # two links to the one file
        assert len([p for p in (tmp_path / "exports").iterdir() if not p.name.startswith(".")]) == 1


def test_a_key_may_have_only_so_many_exports_built_per_minute(world, tmp_path):
    coins = [c["coin"] for c in world.service.coins()][:3]
    tries = iter(range(3))

    def attempt():  # a new key and export folder each time, the three exports in one clock minute
        app = app_with(world, tmp_path / f"try{next(tries)}", exports_per_minute=2)
        fresh, _ = world.keys.create("exports-bound")
        with TestClient(app, headers=world.headers(fresh), follow_redirects=False) as c:
            made = [c.get(f"/api/external/positions/open/coin/{coin}").status_code for coin in coins[:2]]
            return app, fresh, made, c.get(f"/api/external/positions/open/coin/{coins[2]}")

    app, fresh, made, over = in_one_minute(attempt, seconds_needed=15)
    assert made == [302, 302]
    with TestClient(app, headers=world.headers(fresh), follow_redirects=False) as c:
        assert over.status_code == 429 and over.json()["retry_after"] >= 1 and "Retry-After" in over.headers
        assert c.get(f"/api/external/positions/open/coin/{coins[0]}").status_code == 302  # reuse is free
        other = c.get(f"/api/external/positions/open/coin/{coins[2]}", headers=world.headers(world.limited))
        assert other.status_code == 302  # the bound is per key


def test_the_export_folder_is_bounded_by_bytes(world, tmp_path):
    app = app_with(world, tmp_path, exports_max_bytes=2_000)
    with TestClient(app, headers=world.headers(), follow_redirects=False) as c:
        full = c.get("/api/external/positions/open/coin/BTC")
        assert full.status_code == 503 and "export storage is full" in full.json()["message"]
    assert sum(p.stat().st_size for p in (tmp_path / "exports").iterdir()) <= 2_000


@pytest.mark.parametrize(
    "query",
    ["start=0001-01-01T00:00:00%2B01:00", f"start={START}&end=9999-12-31T23:59:59-01:00", "start=1969-12-31"],
)
def test_times_outside_the_representable_range_are_a_400(client, query):
    for route in ("/api/external/segments/1/bias-history", "/api/external/position-metrics/general"):
        response = client.get(f"{route}?{query}")
        assert response.status_code == 400 and response.json()["error"] == "bad_parameter", response.text
        assert "between 1970-01-01 and 9999-12-31" in response.json()["message"]


def test_a_wrong_method_is_a_405_that_says_what_is_allowed(live_server):
    response = live_server.post("/api/external/segments")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.json() == {"error": "method_not_allowed", "message": "POST is not allowed here; allowed: GET, HEAD"}


def test_head_answers_like_get_without_a_body(live_server):
    get = live_server.get("/api/external/segments")
    head = live_server.head("/api/external/segments")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == str(len(get.content))
    assert live_server.head("/health").status_code in (200, 503)


def test_a_request_the_http_parser_refuses_still_gets_the_json_error_shape(live_server):
    import json
    import socket

    host, port = live_server.base_url.host, live_server.base_url.port
    for request in (
        b"GET /api/external/segments?q=" + b"x" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GARBAGE\r\n\r\n",
    ):
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(request)
            raw = b""
            while chunk := s.recv(65536):
                raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400") and b"content-type: application/json" in head.lower(), head
        parsed = json.loads(body)
        assert set(parsed) == {"error", "message"} and parsed["error"] == "bad_request"
