"""The round trip: the simulated market written as a node's files, replayed, serves exactly what the
simulator served; and a replay resumes, rejects bad snapshots whole, and refuses another folder."""

import shutil

import pytest
from tests.factories import T0
from tests.sources.test_simulator_source import snapshot

from hyperscope.errors import ConfigError
from hyperscope.ingest import Ingestor
from hyperscope.pipeline import IngestStatus, backfill
from hyperscope.sources.hyperliquid.build import Anchors
from hyperscope.sources.hyperliquid.node import NodeSource, snapshot_files
from hyperscope.sources.simulator.nodewriter import write_node_dir
from hyperscope.sources.simulator.source import SimulatedSource
from hyperscope.store import open_store

HOURS = 3
UNTIL = T0 + HOURS * 3_600_000


def simulated(path):
    return SimulatedSource("tiny", 9, 900, path / "simulator.npz", history_ms=HOURS * 3_600_000, clock=lambda: UNTIL)


def replay(folder, data):
    import orjson

    anchors = Anchors.from_leaderboard(orjson.loads((folder / "hyperscope" / "leaderboard.json").read_bytes()))
    return NodeSource(folder, data / "source.npz", watch=False, anchors=anchors)


def ingest_all(source, data, **kwargs):
    store = open_store(data / "s.duckdb")
    try:
        source.attach(store)
        backfill(source, Ingestor(store), **kwargs)
        return snapshot(store), store.status()["counts"]
    finally:
        store.close()


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("node")
    assert write_node_dir(folder, simulated(tmp_path_factory.mktemp("writer"))) == HOURS * 4
    return folder


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    data = tmp_path_factory.mktemp("direct")
    return ingest_all(simulated(data), data)


def test_a_replay_of_simulator_written_files_serves_exactly_what_the_simulator_served(node_dir, direct, tmp_path):
    replayed, counts = ingest_all(replay(node_dir, tmp_path), tmp_path)
    assert counts["state_updates"] == HOURS * 4 and counts["open_positions"] > 1000
    for table in direct[0]:
        assert replayed[table] == direct[0][table], table


def test_the_node_files_have_the_upstream_layout(node_dir):
    files = snapshot_files(node_dir)
    assert len(files) == HOURS * 4
    first = next(iter(files.values()))
    assert first.parent.parent.name == "periodic_abci_states" and first.parent.name.isdigit()
    hours = sorted((node_dir / "node_fills_by_block" / "hourly").glob("*/*"))
    assert hours and all(p.name.isdigit() and len(p.parent.name) == 8 for p in hours)
    assert (node_dir / "misc_events_by_block" / "hourly").is_dir()


def test_an_interrupted_replay_resumes_to_the_same_store(node_dir, direct, tmp_path):
    status = IngestStatus()
    source = replay(node_dir, tmp_path)
    store = open_store(tmp_path / "s.duckdb")
    source.attach(store)
    import threading

    stop = threading.Event()
    backfill(source, Ingestor(store), stop=stop, status=status,
             progress=lambda done, total, result: stop.set() if done == 5 else None)  # fmt: skip
    store.close()
    resumed, _ = ingest_all(replay(node_dir, tmp_path), tmp_path)
    assert resumed == direct[0]


def test_a_corrupt_snapshot_is_rejected_whole_and_the_next_one_goes_in(node_dir, tmp_path, caplog):
    folder = tmp_path / "node"
    shutil.copytree(node_dir, folder)
    files = list(snapshot_files(folder).values())
    bad = files[3]
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # truncated, as a disk-full copy would be
    status = IngestStatus()
    (_, counts) = ingest_all(replay(folder, tmp_path), tmp_path, status=status)
    assert status.rejected == 1 and counts["state_updates"] == HOURS * 4 - 1
    assert any(bad.name in r.getMessage() and "rejected" in r.getMessage() for r in caplog.records)


def test_a_store_refuses_another_node_folder(node_dir, tmp_path):
    ingest_all(replay(node_dir, tmp_path), tmp_path)
    other = tmp_path / "other"
    shutil.copytree(node_dir, other)
    store = open_store(tmp_path / "s.duckdb")
    try:
        with pytest.raises(ConfigError, match="holds state updates from the Hyperliquid node data in"):
            replay(other, tmp_path).attach(store)
    finally:
        store.close()
