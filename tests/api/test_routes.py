"""Every route over real HTTP and in-process: upstream shapes, recomputation, auth, limits, paging, errors."""

import base64
import json

import pytest

from hyperscope.domain.timefmt import iso_ms
from tests.api import upstream

START = iso_ms(0)


def routes(world):
    coin = "BTC"
    return {
        "general": (
            f"/api/external/position-metrics/general?start={START}",
            upstream.example("stats-page-data.md", "/api/external/position-metrics/general"),
        ),
        "perp-volume": (
            f"/api/external/metrics/perp-volume?start={START}",
            upstream.example("stats-page-data.md", "/api/external/metrics/perp-volume"),
        ),
        "coins": (
            "/api/external/positions/coins",
            upstream.example("positions-and-market-data.md", "/api/external/positions/coins"),
        ),
        "coin": (
            f"/api/external/position-metrics/coin/{coin}?start={START}",
            upstream.example("positions-and-market-data.md", "/api/external/position-metrics/coin/{coin}"),
        ),
        "segment": (
            f"/api/external/position-metrics/coin/{coin}/segment/1?start={START}",
            upstream.example("positions-and-market-data.md", "/api/external/position-metrics/coin/{coin}"),
        ),
        "bucket": (
            f"/api/external/position-metrics/coin/{coin}/position-size-bucket/1?start={START}",
            upstream.example("positions-and-market-data.md", "/api/external/position-metrics/coin/{coin}"),
        ),
        "segments": ("/api/external/segments", upstream.LISTED["segments"]),
        "bias-history": ("/api/external/segments/9/bias-history", upstream.LISTED["bias-history"]),
        "heatmap": ("/api/external/positions/heatmap", upstream.LISTED["heatmap"]),
        "liquidation-risk": ("/api/external/16/assets/liquidation-risk", upstream.LISTED["liquidation-risk"]),
    }


@pytest.mark.parametrize(
    "name",
    [
        "general",
        "perp-volume",
        "coins",
        "coin",
        "segment",
        "bucket",
        "segments",
        "bias-history",
        "heatmap",
        "liquidation-risk",
    ],
)
def test_route_matches_upstream_shape_over_real_http(world, live_server, name):
    path, example = routes(world)[name]
    response = live_server.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert upstream.same_shape(body, example, nullable=upstream.NULLABLE) == []
    rows = body if isinstance(body, list) else next(v for v in body.values() if isinstance(v, list))
    assert len(rows) > 0  # never an empty answer on a populated store


def test_health_and_prometheus_need_no_key(world, live_server):
    health = live_server.get("/health", headers={"Authorization": ""}).json()
    assert health["height"] == world.updates[-1].height and health["status"] == "ok"
    text = live_server.get("/metrics", headers={"Authorization": ""}).text
    assert "hyperscope_http_requests_total" in text and "hyperscope_state_update_height" in text


def test_coins_recompute_from_stored_open_positions(world, client):
    rows = world.store._dicts("SELECT coin, side, value FROM positions_open", [])
    coins = client.get("/api/external/positions/coins").json()
    assert [c["totalValue"] for c in coins] == sorted((c["totalValue"] for c in coins), reverse=True)
    for c in coins:
        mine = [r for r in rows if r["coin"] == c["coin"]]
        assert c["count"] == len(mine)
        assert c["countLong"] == sum(r["side"] == "long" for r in mine)
        assert c["totalValue"] == pytest.approx(sum(r["value"] for r in mine), rel=1e-9)
        assert c["totalValueLong"] == pytest.approx(c["totalValueShort"], rel=1e-6)  # long size == short size


def test_heatmap_cohort_axes_sum_to_the_coin_totals(world, client):
    heatmap = client.get("/api/external/positions/heatmap").json()["heatmap"]
    coins = {c["coin"]: c for c in client.get("/api/external/positions/coins").json()}
    for entry in heatmap:
        for axis in ({1, 2, 3, 4, 5, 6, 7, 16}, set(range(8, 16))):
            total = sum(s["totalValue"] for s in entry["segments"] if s["segmentId"] in axis)
            assert total == pytest.approx(coins[entry["coin"]]["totalValue"], rel=1e-9)
        for s in entry["segments"]:
            assert s["bias"] == pytest.approx(s["totalLongValue"] / s["totalValue"])


def test_segment_series_recomputes_from_positions(world, client):
    latest = world.updates[-1]
    rows = world.store._dicts("SELECT * FROM positions_open WHERE coin = 'BTC'", [])
    for segment in (1, 12, 16):
        body = client.get(f"/api/external/position-metrics/coin/btc/segment/{segment}?start={START}&limit=1").json()
        col = "pnl_segment" if 8 <= segment <= 15 else "size_segment"
        mine = [r for r in rows if r[col] == segment]
        if not mine:
            continue
        (row,) = body["metrics"]
        assert row["createdAt"] == iso_ms(latest.time)
        assert row["positionCount"] == len(mine)
        assert row["totalPositionValue"] == pytest.approx(sum(r["value"] for r in mine), rel=1e-9)


def test_coins_are_case_insensitive_and_hip3_works_encoded_or_not(client):
    a = client.get(f"/api/external/position-metrics/coin/btc?start={START}&limit=1").json()
    assert a["metrics"][0]["coin"] == "BTC"
    for path in ("xyz:gold", "XYZ%3AGOLD"):
        body = client.get(f"/api/external/position-metrics/coin/{path}?start={START}&limit=1").json()
        assert body["metrics"][0]["coin"] == "xyz:GOLD"


@pytest.mark.parametrize(
    ("path", "status", "kind", "needle"),
    [
        ("/api/external/position-metrics/coin/NOPE?start=2026-01-01", 404, "not_found", "NOPE"),
        ("/api/external/position-metrics/coin/BTC/segment/17?start=2026-01-01", 404, "not_found", "17"),
        ("/api/external/position-metrics/coin/BTC/position-size-bucket/0?start=2026-01-01", 404, "not_found", "0"),
        ("/api/external/position-metrics/coin/BTC", 400, "bad_parameter", "start"),
        ("/api/external/position-metrics/general?start=yesterday", 400, "bad_parameter", "start"),
        ("/api/external/position-metrics/general?start=2026-02-02&end=2026-02-01", 400, "bad_parameter", "after end"),
        ("/api/external/position-metrics/general?start=2026-01-01&limit=1001", 400, "bad_parameter", "limit"),
        ("/api/external/position-metrics/general?start=2026-01-01&limit=abc", 400, "bad_parameter", "limit"),
        ("/api/external/positions/heatmap?openedWithin=1y", 400, "bad_parameter", "openedWithin"),
        ("/api/external/segments/9/bias-history?limit=5", 400, "bad_parameter", "start"),
        ("/api/external/9/assets/liquidation-risk?limit=501", 400, "bad_parameter", "limit"),
        ("/api/external/nowhere", 404, "not_found", "nowhere"),
    ],
)
def test_bad_input_gets_a_clear_4xx(client, path, status, kind, needle):
    response = client.get(path)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == kind and needle in body["message"]


def test_auth_cases(world, client, live_server):
    url = "/api/external/positions/coins"
    assert live_server.get(url, headers={"Authorization": ""}).status_code == 401
    for header, status in [
        ("Basic abc", 401),
        ("Bearer", 401),
        ("Bearer hs_nope_x", 401),
        (f"Bearer {world.key}x", 401),
        (f"Bearer {world.revoked}", 401),
        (f"Bearer {world.metrics_only}", 403),
    ]:
        response = live_server.get(url, headers={"Authorization": header})
        assert response.status_code == status, header
        assert response.json()["error"] in ("unauthorized", "forbidden")
    ok = live_server.get(
        f"/api/external/position-metrics/general?start={START}&limit=1",
        headers={"Authorization": f"Bearer {world.metrics_only}"},
    )
    assert ok.status_code == 200


def test_rate_limit_headers_and_429(world, client):
    from tests.process import in_one_minute

    def attempt():  # a new key of 3 a minute each time, its four requests in one clock minute
        token, _ = world.keys.create("limited-3", rate_limit=3)
        headers = {"Authorization": f"Bearer {token}"}
        return [client.get("/api/external/segments", headers=headers) for _ in range(4)]

    seen = in_one_minute(attempt, seconds_needed=10)
    assert [r.status_code for r in seen[:3]] == [200, 200, 200]
    assert seen[0].headers["X-RateLimit-Limit"] == "3" and seen[2].headers["X-RateLimit-Remaining"] == "0"
    over = seen[3]
    assert over.status_code == 429
    body = over.json()
    assert body["error"] == "rate_limit_exceeded" and body["retry_after"] >= 1
    assert int(over.headers["Retry-After"]) == body["retry_after"]


def test_tampered_or_foreign_cursor_is_a_400(client):
    url = f"/api/external/position-metrics/coin/BTC?start={START}&limit=2"
    cursor = client.get(url).json()["nextCursor"]
    body, sig = cursor.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["i"] += 1
    edited = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=") + "." + sig
    for bad in (edited, cursor[:-2] + "xx", "garbage"):
        r = client.get(url + f"&nextCursor={bad}")
        assert r.status_code == 400 and r.json()["error"] == "bad_cursor"
    other = client.get(f"/api/external/position-metrics/coin/ETH?start={START}&limit=2&nextCursor={cursor}")
    assert other.status_code == 400 and "different query" in other.json()["message"]


def test_openapi_lists_every_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/external/position-metrics/general",
        "/api/external/metrics/perp-volume",
        "/api/external/positions/coins",
        "/api/external/position-metrics/coin/{coin}",
        "/api/external/position-metrics/coin/{coin}/segment/{segmentId}",
        "/api/external/position-metrics/coin/{coin}/position-size-bucket/{sizeBucketId}",
        "/api/external/segments",
        "/api/external/segments/{segmentId}/bias-history",
        "/api/external/positions/heatmap",
        "/api/external/{segmentId}/assets/liquidation-risk",
        "/health",
        "/metrics",
    ):
        assert path in paths
    general = paths["/api/external/position-metrics/general"]["get"]
    documented = {p["name"]: p for p in general["parameters"]}
    assert set(documented) == {"start", "end", "limit", "nextCursor"} and not documented["start"]["required"]
    volume = {p["name"]: p for p in paths["/api/external/metrics/perp-volume"]["get"]["parameters"]}
    assert volume["start"]["required"]  # as the upstream docs mark each
    assert general["security"] == [{"bearer": []}]
    assert "security" not in paths["/health"]["get"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text


def test_general_metrics_need_no_start_as_upstream_documents_and_perp_volume_does(world, client):
    latest = world.updates[-1]
    page = client.get("/api/external/position-metrics/general", params={"limit": 3}).json()
    assert [m["createdAt"] for m in page["metrics"]][0] == iso_ms(latest.time) and len(page["metrics"]) == 3
    assert page["nextCursor"]  # the rest of the series, newest first
    r = client.get("/api/external/metrics/perp-volume")
    assert r.status_code == 400 and "start" in r.json()["message"]


def test_the_served_bias_is_the_tested_formula(world, client):
    """Audit: the service computed bias with its own private ratio; it now serves formulas.long_fraction and
    formulas.perp_bias (a cohort with no positive active equity has no perpBias, not a negative ratio)."""
    import numpy as np

    from hyperscope.domain import formulas
    from hyperscope.exports import documents
    from hyperscope.service import queries

    heat = client.get("/api/external/positions/heatmap").json()["heatmap"]
    for coin in heat[:5]:
        for s in coin["segments"]:
            expected = formulas.long_fraction(np.array([s["totalLongValue"]]), np.array([s["totalValue"]]))[0]
            assert s["bias"] == (None if np.isnan(expected) else expected)
    assert formulas.scalar(formulas.perp_bias, 10.0, 4.0, -5.0) is None
    assert formulas.scalar(formulas.perp_bias, 10.0, 4.0, 3.0) == 2.0
    assert formulas.scalar(formulas.long_fraction, 0.0, 0.0) is None
    assert formulas.scalar(formulas.exposure_ratio, 6.0, 3.0) == 2.0
    assert not hasattr(queries, "_ratio") and not hasattr(documents, "_ratio")
