"""Watching a node's folder: named snapshots only, as they land; catching up oldest first or newest only."""

import os
import threading

from tests.process import wait_until
from tests.sources.hyperliquid.conftest import abci_state, write_rmp

from hyperscope.ingest import Ingestor
from hyperscope.pipeline import live
from hyperscope.sources.hyperliquid.node import NodeSource, snapshot_files
from hyperscope.store import open_store


def state_at(height):
    state = abci_state()
    state["exchange"]["locus"]["ctx"]["height"] = height
    state["exchange"]["locus"]["ctx"]["time"] = 1774947600000 + (height - 941000000) * 60
    return state


def test_only_named_complete_snapshots_count(tmp_path):
    write_rmp(tmp_path, state_at(941000000))
    day = tmp_path / "periodic_abci_states" / "20260331"
    os.link(day / "941000000.rmp", day / "abci_state.rmp")  # the node's moving link
    (day / "941010000.rmp.tmp").write_bytes(b"\x80")
    (day / ".941020000.rmp").write_bytes(b"\x80")
    assert list(snapshot_files(tmp_path)) == [941000000]


def test_a_watching_source_ingests_each_snapshot_as_it_lands(tmp_path):
    folder = tmp_path / "hl"
    write_rmp(folder, state_at(941000000))
    store = open_store(tmp_path / "s.duckdb")
    source = NodeSource(folder, tmp_path / "source.npz", watch=True, poll_seconds=0.05, fills_wait_seconds=0)
    source.attach(store)
    stop = threading.Event()
    worker = threading.Thread(target=live, args=(source, Ingestor(store), stop), kwargs={"max_updates": 3})
    worker.start()
    for done, height in ((941000000, 941010000), (941010000, 941020000)):
        # each lands after the one before was ingested: wait for that
        wait_until(lambda done=done: source.last_height == done or not worker.is_alive(), f"snapshot {done} ingested")
        assert worker.is_alive() or source.last_height == done
        write_rmp(folder, state_at(height), height=height)
    worker.join(timeout=60)
    assert not worker.is_alive()
    stop.set()
    assert [r["height"] for r in store._dicts("SELECT height FROM state_updates ORDER BY height", [])] == [
        941000000,
        941010000,
        941020000,
    ]
    assert source.health()["last_snapshot"] == 941020000 and "oracle" in source.health()["market_data"]
    store.close()
    # a restart resumes after the stored height: nothing is ingested twice
    store = open_store(tmp_path / "s.duckdb")
    again = NodeSource(folder, tmp_path / "source.npz", watch=True)
    again.attach(store)
    assert again.backlog().total == 0
    store.close()


def test_catch_up_newest_skips_the_backlog(tmp_path):
    for height in (941000000, 941010000, 941020000):
        write_rmp(tmp_path, state_at(height), height=height)
    newest = NodeSource(tmp_path, tmp_path / "a.npz", watch=True, catch_up="newest")
    assert [step().height for step in newest.backlog()] == [941020000]
    oldest = NodeSource(tmp_path, tmp_path / "b.npz", watch=True)
    assert oldest.backlog().total == 3


def test_a_late_snapshot_is_valued_with_its_own_oracle_prices_never_with_marks_fetched_now(tmp_path):
    """Catching up, a snapshot read long after it was written gets no market data fetched now; a fresh one
    does. /health's market_data says which."""
    from tests.sources.hyperliquid.infoserver import InfoServer

    from hyperscope.sources.hyperliquid.info_client import InfoClient

    server = InfoServer()
    folder = tmp_path / "hl"
    write_rmp(folder, state_at(941000000))
    snapshot_s = state_at(941000000)["exchange"]["locus"]["ctx"]["time"] / 1000  # its block time
    now = [snapshot_s + 3600]  # an hour later: catch-up
    client = InfoClient(server.url, 1200, timeout=5.0, retries=1)
    source = NodeSource(
        folder, tmp_path / "source.npz", watch=True, fills_wait_seconds=0, market=client, clock=lambda: now[0]
    )
    store = open_store(tmp_path / "s.duckdb")
    try:
        source.attach(store)
        ((height, path),) = source._due()
        update = source._update(height, path)
        assert not [r for r in server.requests if r.get("type") == "metaAndAssetCtxs"]
        assert "oracle prices only: the snapshot was 60 min old" in source.health()["market_data"]
        marks = dict(
            zip(update.markets.column("coin").to_pylist(), update.markets.column("mark_px").to_pylist(), strict=True)
        )
        assert marks["BTC"] == 60000.0  # the snapshot's own oracle price
        write_rmp(folder, state_at(941010000), height=941010000)
        now[0] = snapshot_s + 600 + 60  # this one is a minute old when read: live market data
        ((height, path),) = source._due()
        source._update(height, path)
        assert [r for r in server.requests if r.get("type") == "metaAndAssetCtxs"]
        assert "oracle" not in source.health()["market_data"]
    finally:
        store.close()
        client.close()


def test_streaming_event_folders_are_read_and_one_event_per_line_is_refused_naming_the_flags(tmp_path):
    import pytest

    from hyperscope.errors import ConfigError
    from hyperscope.sources.hyperliquid.node import event_folder

    streaming = tmp_path / "a" / "node_fills_streaming"
    streaming.mkdir(parents=True)
    assert event_folder(tmp_path / "a", "node_fills_by_block") == streaming
    (tmp_path / "b" / "node_fills").mkdir(parents=True)
    with pytest.raises(ConfigError, match="--write-fills --write-misc-events --batch-by-block"):
        NodeSource(tmp_path / "b", tmp_path / "source.npz", watch=True)
    (tmp_path / "c" / "node_fills_by_block").mkdir(parents=True)
    (tmp_path / "c" / "node_fills").mkdir()  # both: the blocks are read
    assert event_folder(tmp_path / "c", "node_fills_by_block") == tmp_path / "c" / "node_fills_by_block"
