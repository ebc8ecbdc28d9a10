"""The Coin Metrics family under /v4, read by the official `coinmetrics-api-client` over real HTTP."""

import csv
import io
import json
from collections import defaultdict

import numpy as np
import pytest
from coinmetrics._exceptions import CoinMetricsClientBadParameterError, CoinMetricsClientUnauthorizedError
from coinmetrics.api_client import CoinMetricsClient

from hyperscope.domain.funding import aggregate_8h, rolling_cumulative

AFR = "futures_aggregate_funding_rate_all_margin_8h_period"
AFR_USD_1Y = "futures_aggregate_funding_rate_usd_margin_1y_period"
CFR = "futures_cumulative_funding_rate_usd_margin_rolling_1d"
HOUR = 3_600_000


@pytest.fixture(scope="module")
def cm(february):
    world, http = february
    port = int(str(http.base_url).rstrip("/").rsplit(":", 1)[1])
    return world, http, CoinMetricsClient(world.key, host="127.0.0.1", port=port, schema="http")


def expected(world, coins):
    """AFR_8h and the rolling 1-day CFR per hour, recomputed here with plain loops from the stored rows."""
    rows = world.store.funding_rows(coins, 0, 2**62).to_pylist()
    by_hour = defaultdict(list)
    for r in rows:
        if r["open_interest_usd"] > 0:
            by_hour[r["time"]].append(r)
    afr = {
        t: sum(r["open_interest_usd"] * 8 * r["rate"] for r in rs) / sum(r["open_interest_usd"] for r in rs)
        for t, rs in sorted(by_hour.items())
    }
    cfr = {}
    for t in afr:
        product = 1.0
        for h in afr:
            if t - 24 * HOUR < h <= t:
                product *= 1 + afr[h] / 8
        cfr[t] = product - 1
    return afr, cfr


def test_the_client_reads_asset_metrics_through_pages_and_as_a_stream(cm):
    world, _, client = cm
    paged = client.get_asset_metrics(
        assets=["btc", "eth"], metrics=[AFR, CFR], frequency="1h", page_size=7, format="json"
    ).to_dataframe()
    streamed = client.get_asset_metrics(assets=["btc", "eth"], metrics=[AFR, CFR], frequency="1h").to_dataframe()
    assert list(paged.columns) == ["asset", "time", AFR, CFR]
    assert len(paged) == len(streamed) > 14 and (paged.values == streamed.values).all()
    assert not paged.duplicated(["asset", "time"]).any()
    for asset, coins in (("btc", ["BTC", "hyna:BTC"]), ("eth", ["ETH", "hyna:ETH"])):
        afr, cfr = expected(world, coins)
        mine = paged[paged.asset == asset]
        assert [t.value // 1_000_000 for t in mine.time] == list(afr)
        assert np.allclose(mine[AFR].astype(float), list(afr.values()), rtol=1e-12)
        assert np.allclose(mine[CFR].astype(float), list(cfr.values()), rtol=1e-12)


def test_exchange_assets_are_one_dex_each_and_daily_is_the_midnight_hour(cm):
    world, _, client = cm
    hourly = client.get_exchange_asset_metrics(
        exchange_assets=["hyperliquid-btc", "hyperliquid-hyna-btc"], metrics=[AFR, AFR_USD_1Y], frequency="1h"
    ).to_dataframe()
    daily = client.get_exchange_asset_metrics(
        exchange_assets=["hyperliquid-btc", "hyperliquid-hyna-btc"], metrics=[AFR, AFR_USD_1Y], frequency="1d"
    ).to_dataframe()
    for ea, coins in (("hyperliquid-btc", ["BTC"]), ("hyperliquid-hyna-btc", ["hyna:BTC"])):
        afr, _ = expected(world, coins)
        mine = hourly[hourly.exchange_asset == ea]
        assert np.allclose(mine[AFR].astype(float), list(afr.values()), rtol=1e-12)
        assert np.allclose(mine[AFR_USD_1Y].astype(float), mine[AFR].astype(float) * 3 * 365, rtol=1e-12)  # 2026
        midnight = mine[mine.time.dt.hour == 0]
        days = daily[daily.exchange_asset == ea]
        assert len(days) == len(midnight) >= 1
        assert (days[AFR].values == midnight[AFR].values).all()
        assert (days.time.values == midnight.time.values).all()


def test_market_funding_rates_are_the_hourly_rates(cm):
    world, _, client = cm
    rates = client.get_market_funding_rates(
        markets=["hyperliquid-BTC-future", "hyperliquid-xyz:GOLD-future"], page_size=5, format="json"
    ).to_dataframe()
    assert list(rates.columns)[:5] == ["market", "time", "rate", "period", "interval"]
    for market, coin in (("hyperliquid-BTC-future", "BTC"), ("hyperliquid-xyz:GOLD-future", "xyz:GOLD")):
        stored = world.store.funding_rows([coin], 0, 2**62).to_pylist()
        mine = rates[rates.market == market]
        assert np.allclose(mine.rate.astype(float), [r["rate"] for r in stored], rtol=1e-12, atol=0)
        assert len(mine) == len(stored)
        # stamped at the end of the funding interval: the hour's rate settles at the next hour (CM §3.4)
        assert [t.value // 1_000_000 for t in mine.time] == [r["time"] + HOUR for r in stored]
        # each rate prints as the decimal it was given as, never with float noise
        assert list(mine.rate) == [
            repr(r["rate"]).removesuffix(".0") if "e" not in repr(r["rate"]) else mine.rate.iloc[i]
            for i, r in enumerate(stored)
        ]
    assert set(rates.period) == {"01:00:00"}
    (catalog,) = client.catalog_market_funding_rates_v2(markets=["hyperliquid-BTC-future"]).to_list()
    first = world.store.funding_rows(["BTC"], 0, 2**62).column("time").to_pylist()[0]
    assert catalog["min_time"].startswith(iso_hour(first + HOUR))


def iso_hour(ms):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_wildcards_select_every_matching_id_as_the_cm_docs_allow(cm):
    world, http, client = cm
    everything = http.get("/v4/catalog-v2/exchange-asset-metrics").json()["data"]
    hyperliquid = sorted({r["exchange_asset"] for r in everything})
    got = client.get_exchange_asset_metrics(
        exchange_assets=["hyperliquid-*"], metrics=[AFR], frequency="1h", format="json"
    ).to_list()
    assert sorted({r["exchange_asset"] for r in got}) == hyperliquid and len(hyperliquid) > 3
    btc = client.get_exchange_asset_metrics(
        exchange_assets=["*-btc"], metrics=[AFR], frequency="1h", format="json"
    ).to_list()
    assert {r["exchange_asset"] for r in btc} == {"hyperliquid-btc", "hyperliquid-hyna-btc"}
    assets = client.get_asset_metrics(assets="*", metrics=[AFR], frequency="1h", format="json").to_list()
    assert {"btc", "eth", "gold"} <= {r["asset"] for r in assets}
    xyz = client.get_market_funding_rates(markets=["hyperliquid-xyz:*"], format="json").to_list()
    assert "hyperliquid-xyz:GOLD-future" in {r["market"] for r in xyz}
    assert all(r["market"].startswith("hyperliquid-xyz:") for r in xyz)
    r = http.get("/v4/timeseries/market-funding-rates", params={"markets": "binance-*"})
    assert r.status_code == 400 and "binance-*" in r.text


def test_derived_values_print_the_shortest_decimal_of_what_they_stand_for():
    from hyperscope.api.coinmetrics.shape import numbers

    assert numbers([8 * 0.0000125, 0.0000125 * 3 * 365, -0.00054481, 1 / 3]) == [
        "0.0001",
        "0.0136875",
        "-0.00054481",
        "0.333333333333333",
    ]


def test_the_clients_typed_errors(cm):
    world, _, client = cm
    with pytest.raises(CoinMetricsClientBadParameterError):
        client.get_asset_metrics(assets=["nope"], metrics=[AFR], format="json").to_list()
    with pytest.raises(CoinMetricsClientBadParameterError):
        client.get_asset_metrics(assets=["btc"], metrics=["PriceUSD"], format="json").to_list()
    port = client._api_base_url.rsplit(":", 1)[1].split("/")[0]
    stranger = CoinMetricsClient("hs_00000000_not-a-key", host="127.0.0.1", port=int(port), schema="http")
    with pytest.raises(CoinMetricsClientUnauthorizedError):
        stranger.get_asset_metrics(assets=["btc"], metrics=[AFR], format="json").to_list()


def test_a_rate_limited_client_waits_the_window_the_server_names(cm, monkeypatch):
    import coinmetrics.api_client

    from tests.process import in_one_minute

    world, http, _ = cm
    port = int(str(http.base_url).rstrip("/").rsplit(":", 1)[1])

    def attempt():  # a new key each time; its one request a minute and the refusal in one clock minute
        token, _ = world.keys.create("cm-limited", rate_limit=1)
        client = CoinMetricsClient(token, host="127.0.0.1", port=port, schema="http")
        slept = []

        def sleep(seconds):
            slept.append(seconds)
            raise RuntimeError("stop after the first wait")

        with monkeypatch.context() as patched:
            patched.setattr(coinmetrics.api_client.time, "sleep", sleep)
            with pytest.raises(RuntimeError, match="first wait"):
                for _ in range(3):
                    client.get_asset_metrics(assets=["btc"], metrics=[AFR], format="json").to_list()
        r = http.get(
            "/v4/timeseries/asset-metrics",
            params={"assets": "btc", "metrics": AFR, "api_key": token},
            headers={"Authorization": ""},
        )  # the key as api_key only
        return slept, r

    slept, r = in_one_minute(attempt, seconds_needed=15)
    assert slept and 0 < slept[0] <= 60
    assert r.status_code == 429 and r.json()["error"]["type"] == "too_many_requests"
    assert int(r.headers["x-ratelimit-remaining"]) == 0 and int(r.headers["x-ratelimit-reset"]) > 0


def test_conventions_errors_and_shapes(cm):
    world, http, _ = cm
    key = {"api_key": world.key}
    base = {"assets": "btc", "metrics": AFR, **key}
    body = http.get("/v4/timeseries/asset-metrics", params={**base, "page_size": 2, "frequency": "1h"}).json()
    assert list(body) == ["data", "next_page_token", "next_page_url"]
    assert list(body["data"][0]) == ["asset", "time", AFR] and isinstance(body["data"][0][AFR], str)
    assert body["data"][0]["time"].endswith(".000000000Z") and len(body["data"][0]["time"]) == 30
    assert body["data"][0]["time"] < body["data"][1]["time"]  # ascending within a page; first page = the end
    following = http.get(body["next_page_url"]).json()
    assert following["data"][-1]["time"] < body["data"][0]["time"]
    for params, needle in (
        ({"frequency": "1m"}, "frequency"),
        ({"page_size": "10001"}, "page_size"),
        ({"start_time": "yesterday"}, "start_time"),
        ({"paging_from": "middle"}, "paging_from"),
        ({"metrics": "futures_aggregate_funding_rate_coin_margin_8h_period"}, "metrics"),
        ({"next_page_token": "forged.token"}, "next_page_token"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
    ):
        r = http.get("/v4/timeseries/asset-metrics", params={**base, **params})
        assert r.status_code == 400, (params, r.text)
        assert r.json()["error"]["type"] == "bad_parameter" and f"'{needle}'" in r.json()["error"]["message"]
    # coin-margined metrics are absent (no coin-margined market), never 0, next to supported ones
    both = http.get(
        "/v4/timeseries/asset-metrics",
        params={**base, "metrics": f"{AFR},futures_aggregate_funding_rate_coin_margin_8h_period"},
    ).json()
    assert all("futures_aggregate_funding_rate_coin_margin_8h_period" not in row for row in both["data"])
    # the page's older id still answers, under the name asked, flagged as deprecated
    old = http.get(
        "/v4/timeseries/asset-metrics", params={**base, "metrics": "futures_cumulative_funding_rate_usd_margin_1d"}
    )
    assert old.status_code == 200 and old.headers["deprecation"] == "true"
    assert "futures_cumulative_funding_rate_usd_margin_1d" in old.json()["data"][0]
    # CSV: a header, then the rows; the next page in x-next-page-url
    text = http.get("/v4/timeseries/asset-metrics", params={**base, "format": "csv", "page_size": 3, "frequency": "1h"})
    rows = list(csv.reader(io.StringIO(text.text)))
    assert rows[0] == ["asset", "time", AFR] and len(rows) == 4 and text.headers["x-next-page-url"]
    # NDJSON: one object per line, every row, no paging
    stream = http.get(
        "/v4/timeseries/asset-metrics", params={**base, "format": "json_stream", "frequency": "1h", "page_size": 1}
    )
    lines = stream.text.strip().split("\n")
    assert stream.headers["content-type"].startswith("application/x-ndjson") and len(lines) > 2
    assert all(json.loads(line)["asset"] == "btc" for line in lines)
    # time formats and timezone: the same instant written six ways (and in Chicago)
    forms = [
        "2026-02-11T00:00:00Z",
        "2026-02-11T00:00:00.000Z",
        "2026-02-11T00:00:00.000000Z",
        "2026-02-11T00:00:00.000000000Z",
        "2026-02-11",
        "20260211",
    ]
    answers = {
        json.dumps(
            http.get(
                "/v4/timeseries/asset-metrics", params={**base, "frequency": "1h", "start_time": f, "end_time": f}
            ).json()["data"]
        )
        for f in forms
    }
    assert len(answers) == 1 and "2026-02-11T00:00:00.000000000Z" in answers.pop()
    chicago = http.get(
        "/v4/timeseries/asset-metrics",
        params={
            **base,
            "frequency": "1h",
            "timezone": "America/Chicago",
            "start_time": "2026-02-10T18:00:00",
            "end_time": "2026-02-10T18:00:00",
        },
    )
    assert chicago.json()["data"][0]["time"] == "2026-02-11T00:00:00.000000000Z"
    # limit_per_asset: the latest n rows of each
    latest = http.get(
        "/v4/timeseries/asset-metrics", params={**base, "assets": "btc,eth", "frequency": "1h", "limit_per_asset": 1}
    ).json()["data"]
    assert [r["asset"] for r in latest] == ["btc", "eth"]
    # every /v4 route needs a key
    for path in (
        "/v4/timeseries/asset-metrics",
        "/v4/catalog-v2/asset-metrics",
        "/v4/reference-data/asset-metrics",
        "/v4/timeseries/market-funding-rates",
        "/v4/anything",
    ):
        r = http.get(path, headers={"Authorization": ""})
        assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"


def test_the_catalogs_list_what_the_timeseries_serve(cm):
    world, _, client = cm
    catalog = client.catalog_asset_metrics_v2(assets=["btc", "gold"]).to_list()
    assert {c["asset"] for c in catalog} == {"btc", "gold"}
    listed = {m["metric"] for m in catalog[0]["metrics"]}
    assert AFR in listed and not any("coin_margin" in m for m in listed)
    markets = client.catalog_market_funding_rates_v2(markets=["hyperliquid-BTC-future"]).to_list()
    assert markets[0]["market"] == "hyperliquid-BTC-future" and markets[0]["min_time"] < markets[0]["max_time"]
    exchange = client.catalog_exchange_asset_metrics_v2(exchange_assets=["hyperliquid-xyz-gold"]).to_list()
    assert exchange[0]["exchange_asset"] == "hyperliquid-xyz-gold"
    reference = client.reference_data_asset_metrics(metrics=[AFR]).to_list()
    assert reference[0]["metric"] == AFR and reference[0]["unit"] == "Dimensionless"


def test_paging_never_repeats_or_skips_while_hours_are_added(tmp_path):
    from tests.api.conftest import World, serving

    world = World(tmp_path / "store.duckdb", steps=4 * 8)
    with serving(world.app, {}) as http:
        params = {
            "assets": "btc",
            "metrics": AFR,
            "frequency": "1h",
            "page_size": 2,
            "api_key": world.key,
            "paging_from": "start",
        }
        seen, body = [], http.get("/v4/timeseries/asset-metrics", params=params).json()
        while True:
            seen += [row["time"] for row in body["data"]]
            for _ in range(4):  # a new hour lands between two pages
                world.step()
            if "next_page_url" not in body:
                break
            assert "api_key" not in body["next_page_url"]  # the caller adds its own, as the official client does
            body = http.get(body["next_page_url"] + f"&api_key={world.key}").json()
        assert seen == sorted(set(seen)) and len(seen) >= 8
        hours = [
            row["time"]
            for row in http.get("/v4/timeseries/asset-metrics", params={**params, "page_size": 10_000}).json()["data"]
        ]
        assert seen == hours[: len(seen)]  # nothing skipped
    world.keys.store.close()
    world.store.close()


def test_the_coin_metrics_test_vectors():
    """semantics.md section 10: a constant 8-hour rate of 0.0001."""
    n = 800
    hours = np.arange(n, dtype=np.int64) * HOUR + 1_767_225_600_000
    group, hour, afr = aggregate_8h(np.zeros(n, np.int64), hours, np.full(n, 0.0001 / 8), np.full(n, 1e6))
    for span, want in ((24, 0.000300043128953384), (168, 0.002102193391828907), (720, 0.009040565015807419)):
        assert rolling_cumulative(group, hour, afr, span)[-1] == pytest.approx(want, rel=1e-12)
    # a gap is skipped, not filled: 23 hours present in the last day compound 23 terms
    gap = np.delete(np.arange(n), n - 5)
    group, hour, afr = aggregate_8h(
        np.zeros(gap.size, np.int64), hours[gap], np.full(gap.size, 0.0001 / 8), np.full(gap.size, 1e6)
    )
    assert rolling_cumulative(group, hour, afr, 24)[-1] == pytest.approx((1 + 0.0001 / 8) ** 23 - 1, rel=1e-12)
    # no open interest: no value at that hour
    _, hour, _ = aggregate_8h(np.zeros(3, np.int64), hours[:3], np.full(3, 1e-5), np.array([1.0, 0.0, 2.0]))
    assert list(hour) == [hours[0], hours[2]]
