"""metrics/aggregates.py over ten hand-checkable positions: every figure is a sum you can do on paper."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from hyperscope.domain.state import validate
from hyperscope.metrics import aggregates
from hyperscope.tracking import track
from tests.factories import make_markets, make_position, make_state, make_wallet

BTC, ETH = 60_000.0, 2_500.0


def _rows(positions, wallets=None, before=None):
    update = validate(make_state(1, positions, wallets, markets=make_markets({"BTC": BTC, "ETH": ETH})))
    tracked = track(update, None)
    return aggregates.compute(update, tracked, before)


def _ten():
    # five BTC longs of 0.1 against one short of 0.5; two ETH longs of 1 against two shorts of 1
    return [
        *(make_position(i, "BTC", 0.1, entry_px=50_000.0) for i in range(1, 6)),
        make_position(6, "BTC", -0.5, entry_px=70_000.0),
        make_position(7, "ETH", 1.0, entry_px=2_000.0),
        make_position(8, "ETH", 1.0, entry_px=3_000.0),
        make_position(9, "ETH", -1.0, entry_px=2_000.0),
        make_position(10, "ETH", -1.0, entry_px=3_000.0),
    ]


def test_market_totals_are_the_sums_of_the_positions():
    rows = _rows(_ten())
    g = rows.general
    assert (g["count"], g["count_long"], g["count_short"]) == (10, 7, 3)
    oi = 2 * 0.5 * BTC + 4 * 1.0 * ETH  # every position's |size| x mark
    assert g["open_interest"] == pytest.approx(oi)
    assert g["open_interest_long"] == pytest.approx(0.5 * BTC + 2 * ETH)
    assert g["open_interest_long"] + g["open_interest_short"] == pytest.approx(oi)
    # in profit: the BTC longs (entry 50k < 60k), the BTC short (70k > 60k), the ETH long at 2000, the ETH
    # short at 3000
    assert g["count_in_profit"] == 8
    assert g["perp_equity"] == pytest.approx(10 * 10_000.0)  # ten wallets in position, 10k each


def test_coin_rows_balance_long_and_short_and_sum_pnl():
    coin = {r["coin"]: r for r in _rows(_ten()).coin.to_pylist()}
    btc, eth = coin["BTC"], coin["ETH"]
    assert btc["position_count"] == 6 and btc["position_count_long"] == 5
    assert btc["total_position_value"] == pytest.approx(2 * 0.5 * BTC)
    assert btc["total_position_value_long"] == pytest.approx(0.5 * BTC)
    assert btc["total_unrealized_pnl"] == pytest.approx(5 * 0.1 * 10_000 + 0.5 * 10_000)
    assert eth["total_unrealized_pnl"] == pytest.approx(500 - 500 - 500 + 500)
    assert eth["count_in_profit"] == 2


def test_cohort_rows_of_a_coin_add_up_to_the_coin_on_each_axis():
    """Each position sits in one size cohort and one PnL cohort: per axis, the cohorts sum to the coin."""
    rows = _rows(_ten())
    coin = {r["coin"]: r for r in rows.coin.to_pylist()}
    table = rows.coin_segment.filter(pc.equal(rows.coin_segment.column("timeframe"), "all"))
    for name in ("BTC", "ETH"):
        mine = [r for r in table.to_pylist() if r["coin"] == name]
        size_side = sum(r["position_count"] for r in mine if r["segment_id"] <= 8)
        pnl_side = sum(r["position_count"] for r in mine if r["segment_id"] > 8)
        assert size_side + pnl_side == 2 * coin[name]["position_count"]


def test_size_buckets_of_a_coin_add_up_to_the_coin():
    rows = _rows(_ten())
    coin = {r["coin"]: r for r in rows.coin.to_pylist()}
    for name in ("BTC", "ETH"):
        mine = [r for r in rows.coin_bucket.to_pylist() if r["coin"] == name]
        assert sum(r["position_count"] for r in mine) == coin[name]["position_count"]
        assert sum(r["total_position_value"] for r in mine) == pytest.approx(coin[name]["total_position_value"])


def test_a_coin_that_empties_gets_a_row_of_zeros_once():
    first = _rows(_ten())
    only_btc = [p for p in _ten() if p["coin"] == "BTC"]
    second = _rows(only_btc, before=first.groups())
    eth = [r for r in second.coin.to_pylist() if r["coin"] == "ETH"]
    assert len(eth) == 1 and eth[0]["position_count"] == 0 and eth[0]["total_position_value"] == 0
    third = _rows(only_btc, before=second.groups())
    assert not [r for r in third.coin.to_pylist() if r["coin"] == "ETH"]


def test_wallet_equity_counts_every_wallet_and_its_parts():
    wallets = [make_wallet(i, spot_equity=100.0 * i, vault_equity=1.0) for i in range(1, 11)]
    eq = _rows(_ten(), wallets).wallets_equity
    assert eq["perp"] == pytest.approx(100_000.0)
    assert eq["spot"] == pytest.approx(100.0 * 55)
    assert eq["vault"] == pytest.approx(10.0)
    assert eq["total"] == pytest.approx(eq["perp"] + eq["spot"] + eq["staking"] + eq["vault"])


def test_every_coins_liquidation_bins_are_its_one_coin_map():
    """The bins stored with each update (all coins at once) are what the one-coin map makes of that coin's
    positions: same bins, values, counts and most impacted cohorts."""
    import numpy as np

    from hyperscope.domain.heatmap import liquidation_heatmap

    positions = [
        make_position(1, "BTC", 0.1, entry_px=50_000.0, liquidation_px=45_000.0),
        make_position(2, "BTC", 0.2, entry_px=50_000.0, liquidation_px=45_100.0),
        make_position(3, "BTC", -0.5, entry_px=70_000.0, liquidation_px=90_000.0),  # exactly the top edge
        make_position(4, "BTC", -0.5, entry_px=70_000.0, liquidation_px=95_000.0),  # beyond mark +50%
        make_position(5, "ETH", 1.0, entry_px=2_000.0, liquidation_px=1_250.0),  # exactly the bottom edge
        make_position(6, "ETH", -1.0, entry_px=3_000.0, liquidation_px=None),
        make_position(7, "BTC", 0.7, entry_px=50_000.0, liquidation_px=None),
    ]
    update = validate(make_state(1, positions, markets=make_markets({"BTC": BTC, "ETH": ETH})))
    tracked = track(update, None)
    stored = aggregates.compute(update, tracked).liquidation.to_pylist()
    o = tracked.open
    for name, mark in (("BTC", BTC), ("ETH", ETH)):
        mine = o.filter(pc.equal(o.column("coin"), name))
        liq = pc.fill_null(mine.column("liquidation_px"), np.nan).to_numpy(zero_copy_only=False)
        one = liquidation_heatmap(
            mark,
            liq,
            mine.column("value").to_numpy(),
            mine.column("size_segment").to_numpy(),
            mine.column("pnl_segment").to_numpy(),
        )
        expected = [
            (int(i), float(one["value"][i]), int(one["count"][i]), int(one["segment"][i]))
            for i in np.flatnonzero(one["count"])
        ]
        got = [
            (r["bin"], r["liquidation_value"], r["position_count"], r["most_impacted_segment"])
            for r in stored
            if r["coin"] == name
        ]
        assert got == expected
    # by hand: 45,000 and 45,100 are mark x 0.75 and x 0.7517 (bin 25); 90,000 is the top edge (the last bin);
    # 1,250 is ETH's bottom edge (bin 0); 95,000 lies outside and a position without a price adds nothing
    assert [(r["coin"], r["bin"], r["position_count"]) for r in stored] == [
        ("BTC", 25, 2),
        ("BTC", 99, 1),
        ("ETH", 0, 1),
    ]
    assert stored[0]["liquidation_value"] == pytest.approx(0.3 * BTC)
