"""Recomputation: every stored aggregate equals the same figure recomputed from the stored open positions."""

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest

from hyperscope.errors import InvalidStateUpdate
from hyperscope.store.base import Series
from tests.factories import T0

SUMS = {
    "position_count": lambda p: np.ones(len(p["id"])),
    "position_count_long": lambda p: (p["side"] == "long").astype(float),
    "total_position_value": lambda p: p["value"],
    "total_position_value_long": lambda p: p["value"] * (p["side"] == "long"),
    "total_position_size": lambda p: p["size"],
    "total_funding": lambda p: p["funding"],
    "total_unrealized_pnl": lambda p: p["unrealized_pnl"],
    "count_in_profit": lambda p: (p["unrealized_pnl"] > 0).astype(float),
    "value_close_to_liquidation": lambda p: p["value"] * (p["liquidation_progress"] >= 75),
}


def positions(store):
    rows = store._dicts("SELECT * FROM positions_open", [])
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def check_recomputation(store, height):
    p = positions(store)
    assert (p["height"] == height).all()
    for row in store.series_at(Series("coin"), height):
        mask = p["coin"] == row["coin"]
        for name, f in SUMS.items():
            assert row[name] == pytest.approx(f(p)[mask].sum(), rel=1e-9, abs=1e-6), (row["coin"], name)
    # per coin x segment on both axes, and each axis sums back to the coin total
    cs = store.series_at(Series("coin_segment", timeframe="all"), height)
    coin_rows = {r["coin"]: r for r in store.series_at(Series("coin"), height)}
    for row in cs:
        seg_col = "size_segment" if row["segment_id"] in (1, 2, 3, 4, 5, 6, 7, 16) else "pnl_segment"
        mask = (p["coin"] == row["coin"]) & (p[seg_col] == row["segment_id"])
        assert row["total_position_value"] == pytest.approx(p["value"][mask].sum(), rel=1e-9)
        assert row["position_count"] == mask.sum()
    for axis in ((1, 2, 3, 4, 5, 6, 7, 16), tuple(range(8, 16))):
        totals = {}
        for row in cs:
            if row["segment_id"] in axis:
                totals[row["coin"]] = totals.get(row["coin"], 0.0) + row["total_position_value"]
        for coin, total in totals.items():
            assert total == pytest.approx(coin_rows[coin]["total_position_value"], rel=1e-9)
    for row in store.series_at(Series("coin_bucket"), height):
        mask = (p["coin"] == row["coin"]) & (p["size_bucket"] == row["size_bucket"])
        assert row["position_count"] == mask.sum()
        assert row["total_position_value_long"] == pytest.approx(SUMS["total_position_value_long"](p)[mask].sum())
    (general,) = store.series_at(Series("general"), height)
    assert general["count"] == len(p["id"])
    assert general["open_interest"] == pytest.approx(p["value"].sum(), rel=1e-9)
    assert general["open_interest_long"] == pytest.approx(general["open_interest_short"], rel=1e-6)
    wallets = store._dicts("SELECT perp_equity, count_open_positions FROM wallets", [])
    active = sum(w["perp_equity"] for w in wallets if w["count_open_positions"] > 0)
    assert general["perp_equity"] == pytest.approx(active, rel=1e-9)


WINDOWS = {"24h": 86_400_000, "7d": 7 * 86_400_000, "30d": 30 * 86_400_000, "all": None}
SIZE_AXIS = (1, 2, 3, 4, 5, 6, 7, 16)


def check_recency_and_cohorts(store, height, now):
    p = positions(store)
    wallets = store._dicts("SELECT address, perp_equity, size_segment, pnl_segment FROM wallets", [])
    equity = {w["address"]: w for w in wallets}
    young = (p["open_time"] >= now - WINDOWS["24h"]).sum()
    assert 0 < young < len(p["id"])  # the windows really filter
    for name, window in WINDOWS.items():
        recent = np.ones(len(p["id"]), bool) if window is None else p["open_time"] >= now - window
        for row in store.series_at(Series("coin_segment", timeframe=name), height):
            col = "size_segment" if row["segment_id"] in SIZE_AXIS else "pnl_segment"
            mask = recent & (p["coin"] == row["coin"]) & (p[col] == row["segment_id"])
            assert row["position_count"] == mask.sum(), (name, row)
            assert row["total_position_value"] == pytest.approx(p["value"][mask].sum(), rel=1e-9)
        for row in store.series_at(Series("segment", timeframe=name), height):
            col = "size_segment" if row["segment_id"] in SIZE_AXIS else "pnl_segment"
            mask = recent & (p[col] == row["segment_id"])
            assert row["position_count"] == mask.sum(), (name, row)
            assert row["open_value"] == pytest.approx(p["value"][mask].sum(), rel=1e-9, abs=1e-6)
            long = p["value"][mask & (p["side"] == "long")].sum()
            assert row["open_long_value"] == pytest.approx(long, rel=1e-9, abs=1e-6)
            holders = set(p["address"][mask])
            assert row["traders"] == len(holders)
            active = sum(equity[a]["perp_equity"] for a in holders)
            assert row["active_perp_equity"] == pytest.approx(active, rel=1e-9, abs=1e-6)


def test_every_stored_aggregate_equals_its_recomputation(sim, ingestor, store):
    for k in range(1, 6):
        update = sim.step(T0 + k * 900_000)
        ingestor.ingest(update)
        check_recomputation(store, update.height)
        check_recency_and_cohorts(store, update.height, update.time)


def test_reingesting_a_height_changes_nothing(sim, ingestor, store):
    update = sim.step(T0 + 900_000)
    ingestor.ingest(update)
    before = store.status()["counts"]
    assert ingestor.ingest(update).skipped
    assert store.status()["counts"] == before


def test_rejected_update_leaves_the_store_unchanged(sim, ingestor, store):
    ingestor.ingest(sim.step(T0 + 900_000))
    before = (store.status(), store.load_open_positions())
    good = sim.step(T0 + 2 * 900_000)
    sizes = good.positions.column("size").to_numpy().copy()
    sizes[0] *= 2  # long size no longer equals short size
    bad = replace(good, positions=good.positions.set_column(3, "size", pa.array(sizes)))
    with pytest.raises(InvalidStateUpdate, match="long size"):
        ingestor.ingest(bad)
    assert store.status() == before[0]
    assert store.load_open_positions().equals(before[1])
    with pytest.raises(InvalidStateUpdate, match="older"):
        ingestor.ingest(replace(good, height=1))


@pytest.mark.parametrize("part", ["track", "metrics", "orders"])
def test_a_failure_computed_beside_the_write_rolls_it_back(sim, ingestor, store, monkeypatch, part):
    """The lifecycles, order spans and metrics are computed on the ingestor's worker thread while the store
    writes: an error there is raised by ingest, nothing of the update is stored, and the next try stores it."""
    import hyperscope.ingest as ingest_module

    ingestor.ingest(sim.step(T0 + 900_000))
    before = (store.status(), store.load_open_positions())
    update = sim.step(T0 + 2 * 900_000)

    def broken(*args, **kwargs):
        raise RuntimeError(f"{part} broke")

    target = {"track": "track", "metrics": "_series_tables", "orders": "order_changes"}[part]
    with monkeypatch.context() as patch:
        patch.setattr(ingest_module, target, broken)
        with pytest.raises(RuntimeError, match=f"{part} broke"):
            ingestor.ingest(update)
    assert store.status() == before[0]
    assert store.load_open_positions().equals(before[1])
    assert ingestor.ingest(update).height == update.height
    check_recomputation(store, update.height)


CRASH = """
import os, sys
from hyperscope.ingest import Ingestor
from hyperscope.sources.simulator import Simulator, preset
from hyperscope.store import open_store
store = open_store(sys.argv[1])
sim = Simulator(preset("tiny", seed=11), genesis_ms={t0})
ing = Ingestor(store)
ing.ingest(sim.step({t0} + 900_000))
def die(stage):
    if stage == sys.argv[2]:
        os._exit(137)
store.fault_hook = die
ing.ingest(sim.step({t0} + 2 * 900_000))
"""


@pytest.mark.parametrize("stage", ["markets", "positions", "wallets", "metrics_coin_segment"])
def test_a_process_killed_mid_ingest_leaves_no_partial_update(store_target, stage):
    path = store_target
    proc = subprocess.run([sys.executable, "-c", CRASH.format(t0=T0), str(path), stage], capture_output=True)
    assert proc.returncode == 137, proc.stderr.decode()
    from hyperscope.store import open_store

    store = open_store(path)
    try:
        status = store.status()
        assert status["counts"]["state_updates"] == 1
        height = status["last"]["height"]
        for table in ("markets", "metrics_coin", "metrics_coin_segment", "metrics_general"):
            heights = store._dicts(f"SELECT DISTINCT height FROM {table}", [])
            assert [h["height"] for h in heights] == [height]
        check_recomputation(store, height)
    finally:
        store.close()


def test_a_wallet_missing_from_an_update_keeps_its_last_profile(store, ingestor):
    from tests.factories import make_position, make_state, make_wallet

    wallets = [make_wallet(i, perp_equity=1_000.0 * i) for i in range(1, 6)]
    positions = [make_position(1, "BTC", 1.0), make_position(2, "BTC", -1.0)]
    first = make_state(1, positions, wallets)
    ingestor.ingest(first)
    later = [make_wallet(i, perp_equity=5.0) for i in (1, 2, 3, 5)]
    second = make_state(2, positions, later)
    ingestor.ingest(second)
    rows = {r["address"]: r for r in store._dicts("SELECT address, perp_equity, height FROM wallets", [])}
    assert len(rows) == 5
    assert rows[make_wallet(4)["address"]]["perp_equity"] == 4_000.0
    assert rows[make_wallet(4)["address"]]["height"] == first.height
    assert rows[make_wallet(1)["address"]]["perp_equity"] == 5.0


def test_a_restart_inside_an_hour_writes_no_wallet_marks_until_the_next_hour(store, sim):
    """Marks are the leaderboards' hourly baselines: a restart (a new Ingestor, as after a crash or a database
    outage) must not add a set at another time of the hour."""
    from hyperscope.ingest import Ingestor

    def mark_times():
        return [r["time"] for r in store._dicts("SELECT DISTINCT time FROM wallet_marks ORDER BY time", [])]

    first = Ingestor(store)
    for minutes in (5, 20):
        first.ingest(sim.step(T0 + minutes * 60_000))
    assert len(mark_times()) == 1  # the first update marks
    restarted = Ingestor(store)
    restarted.ingest(sim.step(T0 + 35 * 60_000))
    assert len(mark_times()) == 1
    restarted.ingest(sim.step(T0 + 65 * 60_000))  # the next hour: every wallet, fully
    times = mark_times()
    assert len(times) == 2 and times[1] == T0 + 65 * 60_000
    full = store._dicts(
        "SELECT count(*) AS n, min(CASE WHEN full_mark THEN 1 ELSE 0 END) AS f FROM wallet_marks WHERE time = ?",
        [times[1]],
    )
    assert full[0]["f"] == 1 and full[0]["n"] > 0


def test_a_group_that_empties_says_zero_instead_of_leaving_its_last_row_newest(store, ingestor):
    """ETH's cohorts and buckets hold positions at the first update and none at the second: each gets a row
    of zeros at the second, so "latest" and "at or before" read 0, never the last non-empty state; a new
    Ingestor (a restart) knows the groups of the newest stored update."""
    from hyperscope.ingest import Ingestor
    from tests.factories import make_position, make_state

    btc = [make_position(1, "BTC", 1.0), make_position(2, "BTC", -1.0)]
    eth = [make_position(3, "ETH", 10.0), make_position(4, "ETH", -10.0)]
    ingestor.ingest(make_state(1, btc + eth))
    held = store.series_at(Series("coin_segment", coin="ETH", timeframe="all"), 1)
    assert held and all(r["position_count"] > 0 for r in held)
    ingestor.ingest(make_state(2, btc))
    for series in (
        Series("coin", coin="ETH"),
        Series("coin_segment", coin="ETH", timeframe="all"),
        Series("coin_bucket", coin="ETH"),
    ):
        rows = store.series_at(series, 2)
        assert rows and all(r["position_count"] == 0 and r["total_position_value"] == 0 for r in rows), series
    assert {r["segment_id"] for r in store.series_at(Series("coin_segment", coin="ETH", timeframe="all"), 2)} == {
        r["segment_id"] for r in held
    }
    ingestor.ingest(make_state(3, btc))  # still empty: nothing more to say
    assert not store.series_at(Series("coin", coin="ETH"), 3)
    ingestor.ingest(make_state(4, btc + eth))
    Ingestor(store).ingest(make_state(5, btc))  # a restart between the two
    assert [r["position_count"] for r in store.series_at(Series("coin", coin="ETH"), 5)] == [0]
