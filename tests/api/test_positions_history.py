"""GET /positions: one consolidated record per lifecycle open during the window, open or closed."""

import pytest

from hyperscope.domain.timefmt import iso_ms

E = "/api/external/positions"


def page_through(http, **params):
    rows, cursor = [], None
    while True:
        query = {**params, **({"nextCursor": cursor} if cursor else {})}
        body = http.get(E, params=query).json()
        rows += body["positions"]
        cursor = body["nextCursor"]
        if not cursor:
            return rows


def test_open_records_equal_the_open_positions_csv(world, live_server):
    from tests.api.test_files import csv_rows

    rows = {r["id"]: r for r in csv_rows(live_server, "ETH")}
    got = page_through(live_server, coin="ETH", open="true", limit=50)
    assert {p["id"] for p in got} == set(rows)
    for p in got:
        r = rows[p["id"]]
        assert p["closeTime"] is None and p["coin"] == "ETH" and p["address"] == r["address"]
        assert p["positionValue"] == pytest.approx(float(r["value"]), rel=1e-12)
        assert p["liquidationPrice"] == pytest.approx(float(r["liquidationPrice"]), rel=1e-12)
        assert p["unrealizedPnl"] == pytest.approx(float(r["unrealizedPnl"]), rel=1e-12)
        assert p["profile"]["segments"] == [int(r["profile_sizeSegmentId"]), int(r["profile_perpPnlSegmentId"])]
        assert p["markPrice"] == pytest.approx(p["positionValue"] / p["size"], rel=1e-12)


@pytest.mark.parametrize(
    ("order_by", "order", "key"),
    [
        ("openTime", "asc", lambda p: p["openTime"]),
        ("pnl", "desc", lambda p: -p["unrealizedPnl"]),
        ("value", "asc", lambda p: p["positionValue"]),
    ],
)
def test_paging_covers_every_record_once_in_order(world, live_server, order_by, order, key):
    everything = live_server.get(E, params={"coin": "BTC", "orderBy": order_by, "order": order}).json()["positions"]
    paged = page_through(live_server, coin="BTC", orderBy=order_by, order=order, limit=7)
    assert [p["id"] for p in paged] == [p["id"] for p in everything]
    assert len({p["id"] for p in paged}) == len(paged) > 7
    assert [key(p) for p in paged] == sorted(key(p) for p in paged)


def test_closed_positions_carry_their_real_close_time_even_for_an_earlier_window(world, live_server):
    closed = page_through(live_server, open="false", limit=1000)
    assert closed and all(p["closeTime"] is not None and p["closeTime"] >= p["openTime"] for p in closed)
    late = max(closed, key=lambda p: p["closeTime"])
    # a window that ends before the close still shows the close time
    early = live_server.get(
        E, params={"address": late["address"], "coin": late["coin"], "open": "false", "end": late["openTime"]}
    ).json()["positions"]
    assert [p["closeTime"] for p in early if p["id"] == late["id"]] == [late["closeTime"]]
    # a window that starts after the close does not include it
    after = live_server.get(
        E, params={"address": late["address"], "open": "false", "start": iso_ms(world.updates[-1].time + 1)}
    ).json()["positions"]
    assert late["id"] not in {p["id"] for p in after}
    # closed records of a wallet plus its open ones are exactly its records
    both = page_through(live_server, address=late["address"])
    assert {p["id"] for p in both} >= {late["id"]}


def test_filters_by_addresses_and_cohort(world, live_server):
    some = live_server.get(E, params={"limit": 40}).json()["positions"]
    addresses = sorted({p["address"] for p in some})[:3]
    got = page_through(live_server, address=addresses, limit=100)
    assert got and {p["address"] for p in got} == set(addresses)
    upper = live_server.get(E, params={"address": ",".join(a.upper().replace("0X", "0x") for a in addresses)})
    assert {p["id"] for p in upper.json()["positions"]} == {p["id"] for p in got}
    for segment in (1, 12):
        rows = page_through(live_server, segmentId=segment, limit=500)
        assert rows and all(segment in p["profile"]["segments"] for p in rows)


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"open": "maybe"}, "open"),
        ({"orderBy": "volume"}, "orderBy"),
        ({"order": "up"}, "order"),
        ({"segmentId": "0"}, "segmentId"),
        ({"segmentId": "x"}, "segmentId"),
        ({"address": "0x12"}, "address"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"start": "2026-02-02", "end": "2026-02-01"}, "start"),
        ({"start": "not a date"}, "start"),
        ({"nextCursor": "abc.def"}, "nextCursor"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(live_server, params, needle):
    r = live_server.get(E, params=params)
    assert r.status_code == 400 and r.json()["message"].startswith(needle), r.text


def test_a_cursor_belongs_to_its_query_and_an_unknown_coin_is_a_404(live_server):
    cursor = live_server.get(E, params={"coin": "BTC", "limit": 2}).json()["nextCursor"]
    r = live_server.get(E, params={"coin": "ETH", "limit": 2, "nextCursor": cursor})
    assert r.status_code == 400 and "different query" in r.json()["message"]
    assert live_server.get(E, params={"coin": "NOPE"}).status_code == 404
