"""The simulator bound to a store: one market per store, and a resumed market is the same market."""

import shutil
import threading

import pytest

from hyperscope.errors import ConfigError
from hyperscope.ingest import Ingestor
from hyperscope.pipeline import backfill
from hyperscope.sources.simulator.source import SimulatedSource
from hyperscope.store import open_store
from tests.factories import T0

STEP = 900_000
UNTIL = T0 + 12 * STEP


def source(tmp_path, seed=5, until=UNTIL, genesis=T0, scale="tiny", cadence=900):
    """A source whose clock says `until`, so that a new market begins at `genesis`."""
    return SimulatedSource(
        scale, seed, cadence, tmp_path / "simulator.npz", history_ms=until - genesis, clock=lambda: until
    )


def rows(store, table, order):
    return store._dicts(f"SELECT * FROM {table} ORDER BY {order}", [])


def snapshot(store):
    """Everything that must match between two stores fed the same market (ingest timings excluded)."""
    return {
        "general": rows(store, "metrics_general", "id"),
        "coin": rows(store, "metrics_coin", "id"),
        "segments": rows(store, "metrics_coin_segment", "id"),
        "open": rows(store, "positions_open", "id"),
        "closed": rows(store, "positions_closed", "key"),
        "heights": [(r["height"], r["time"]) for r in rows(store, "state_updates", "height")],
        "order snapshots": [r["height"] for r in rows(store, "state_updates", "height") if r["has_orders"]],
        "orders": rows(store, "order_spans", "span, oid"),
        "order ends": rows(store, "order_ends", "span"),
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    path = tmp_path_factory.mktemp("whole")
    store = open_store(path / "s.duckdb")
    src = source(path)
    src.attach(store)
    backfill(src, Ingestor(store))
    yield snapshot(store)
    store.close()


def interrupted_after(path, n):
    """Backfill that stops after `n` updates, as Ctrl-C does (the checkpoint is saved on the way out)."""
    store = open_store(path / "s.duckdb")
    src, stop = source(path), threading.Event()
    src.attach(store)
    backfill(src, Ingestor(store), stop=stop, progress=lambda done, total, result: stop.set() if done == n else None)
    store.close()


def resume(path):
    store = open_store(path / "s.duckdb")
    src = source(path, genesis=T0 + 999)  # a later start: the stored genesis must win
    replayed = src.attach(store)
    backfill(src, Ingestor(store))
    result = snapshot(store)
    store.close()
    return replayed, result


def test_a_stopped_backfill_resumes_into_the_same_market(tmp_path, uninterrupted):
    interrupted_after(tmp_path, 5)
    replayed, resumed = resume(tmp_path)
    assert replayed == 0 and resumed == uninterrupted


def test_a_crash_before_the_first_checkpoint_rebuilds_the_market_from_its_start(tmp_path, uninterrupted):
    interrupted_after(tmp_path, 5)
    (tmp_path / "simulator.npz").unlink()  # kill -9 before any checkpoint was written
    replayed, resumed = resume(tmp_path)
    assert replayed == 5 and resumed == uninterrupted


def test_a_stale_checkpoint_is_replayed_forward_not_waited_out(tmp_path, uninterrupted):
    interrupted_after(tmp_path, 3)
    checkpoint = ("simulator.npz", "simulator.wallets.npz")
    for name in checkpoint:
        shutil.copy(tmp_path / name, tmp_path / f"old-{name}")
    store = open_store(tmp_path / "s.duckdb")
    src = source(tmp_path, until=T0 + 8 * STEP)
    src.attach(store)
    backfill(src, Ingestor(store))  # the store moves on to 8 updates ...
    store.close()
    for name in checkpoint:  # ... and an old checkpoint comes back
        shutil.copy(tmp_path / f"old-{name}", tmp_path / name)
    replayed, resumed = resume(tmp_path)
    assert replayed == 5 and resumed == uninterrupted


def test_a_checkpoint_ahead_of_the_store_rebuilds_instead_of_leaving_a_gap(tmp_path, uninterrupted):
    interrupted_after(tmp_path, 3)
    shutil.copy(tmp_path / "s.duckdb", tmp_path / "backup.duckdb")  # a copy of the store at 3 updates
    interrupted_after(tmp_path, 3)  # the market goes on to 6; its checkpoint with it
    shutil.copy(tmp_path / "backup.duckdb", tmp_path / "s.duckdb")  # the store is restored from the copy
    replayed, resumed = resume(tmp_path)
    assert replayed == 3 and resumed == uninterrupted


@pytest.mark.parametrize(("scale", "seed", "cadence"), [("small", 5, 900), ("tiny", 6, 900), ("tiny", 5, 600)])
def test_a_store_refuses_another_market(tmp_path, scale, seed, cadence):
    interrupted_after(tmp_path, 2)
    store = open_store(tmp_path / "s.duckdb")
    try:
        other = source(tmp_path, seed=seed, scale=scale, cadence=cadence)
        with pytest.raises(ConfigError, match="holds the simulator scale=tiny seed=5 cadence=900s") as raised:
            other.attach(store)
        assert f"scale={scale} seed={seed} cadence={cadence}s" in raised.value.message
        assert store.status()["counts"]["state_updates"] == 2
    finally:
        store.close()
