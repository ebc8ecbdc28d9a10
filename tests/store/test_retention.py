"""Retention: what each table family keeps, on real stores of both backends fed by the simulator."""

import pytest

from hyperscope.domain.time import DAY_MS
from hyperscope.ingest import Ingestor
from hyperscope.sources.simulator import Simulator, preset
from hyperscope.store import open_store
from hyperscope.store.base import SERIES_TABLES, Retention
from tests.factories import T0

HOUR = 3_600_000
STEP = 900_000
N = 16  # four hours of 15-minute state updates


@pytest.fixture
def filled(store_target):
    store = open_store(store_target)
    sim = Simulator(preset("tiny", seed=3), genesis_ms=T0)
    ingestor = Ingestor(store)
    for k in range(1, N + 1):
        ingestor.ingest(sim.step(T0 + k * STEP))
    yield store
    store.close()


def heights(store, table):
    return sorted({r["height"] for r in store._dicts(f"SELECT DISTINCT height FROM {table}", [])})


def test_metric_rows_are_thinned_past_full_resolution_and_expire_whole(filled):
    store = filled
    times = {r["height"]: r["time"] for r in store._dicts("SELECT height, time FROM state_updates", [])}
    now = max(times.values())
    policy = Retention(
        metrics=3 * HOUR,
        full_resolution=HOUR,
        thin_every=HOUR,
        positions=10 * HOUR,
        fills=10 * HOUR,
        orders=7 * DAY_MS,
        funding=400 * DAY_MS,
    )
    store.apply_retention(policy, now)
    cut = (now - HOUR) // HOUR * HOUR
    expected = set()
    for h, t in times.items():
        if t < now - 3 * HOUR:
            continue  # expired
        if t >= cut:
            expected.add(h)  # full resolution
        elif t == max(u for u in times.values() if u // HOUR == t // HOUR):
            expected.add(h)  # the last update of its hour
    assert len(expected) < len(times)  # the policy really removed something
    for table in (*SERIES_TABLES, "markets"):
        assert set(heights(store, table)) <= expected, table
    for table in ("metrics_general", "metrics_coin", "metrics_perp_volume", "markets"):
        assert set(heights(store, table)) == expected, table  # every kept state update keeps all of its rows
    assert {r["height"] for r in store._dicts("SELECT height FROM state_updates", [])} >= expected
    assert min(r["time"] for r in store._dicts("SELECT time FROM state_updates", [])) >= now - 3 * HOUR
    # a second pass changes nothing
    before = {t: heights(store, t) for t in SERIES_TABLES}
    assert all(v == 0 for k, v in store.apply_retention(policy, now).items() if k in SERIES_TABLES)
    assert {t: heights(store, t) for t in SERIES_TABLES} == before


def test_the_newest_state_update_is_never_deleted(filled):
    store = filled
    latest = store.latest()
    store.apply_retention(
        Retention(
            metrics=1, full_resolution=0, thin_every=1, positions=1, fills=1, orders=7 * DAY_MS, funding=400 * DAY_MS
        ),
        latest.time + HOUR,
    )
    assert heights(store, "metrics_coin") == [latest.height]
    assert store.has_height(latest.height) and store.latest() == latest


def test_closed_lifecycles_and_fills_go_by_their_own_clocks(filled):
    store = filled
    now = store.latest().time
    closed_before = store._dicts("SELECT close_time FROM positions_closed", [])
    fills_before = store._dicts("SELECT time FROM fills", [])
    assert closed_before and fills_before
    store.apply_retention(
        Retention(
            metrics=100 * HOUR,
            full_resolution=100 * HOUR,
            thin_every=HOUR,
            positions=2 * HOUR,
            fills=HOUR,
            orders=7 * DAY_MS,
            funding=400 * DAY_MS,
        ),
        now,
    )
    closed = store._dicts("SELECT close_time FROM positions_closed", [])
    fills = store._dicts("SELECT time FROM fills", [])
    assert len(closed) == sum(r["close_time"] >= now - 2 * HOUR for r in closed_before) < len(closed_before)
    assert len(fills) == sum(r["time"] >= now - HOUR for r in fills_before) < len(fills_before)
    assert len(heights(store, "metrics_coin")) == N  # metric rows untouched


def test_ingest_applies_retention_by_state_update_time(store_target):
    store = open_store(store_target)
    try:
        policy = Retention(
            metrics=2 * HOUR,
            full_resolution=HOUR,
            thin_every=HOUR,
            positions=HOUR,
            fills=HOUR,
            orders=7 * DAY_MS,
            funding=400 * DAY_MS,
        )
        ingestor = Ingestor(store, policy)
        sim = Simulator(preset("tiny", seed=3), genesis_ms=T0)
        for k in range(1, N + 1):
            ingestor.ingest(sim.step(T0 + k * STEP))
        kept = heights(store, "metrics_general")
        assert len(kept) < N and store.latest().height in kept
        oldest = store._dicts("SELECT min(created_at) AS t FROM metrics_general", [])[0]["t"]
        assert oldest >= store.latest().time - 2 * HOUR
    finally:
        store.close()
