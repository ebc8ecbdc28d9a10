"""The round trip: the simulated market written as a node's files, replayed, serves exactly what the
simulator served; and a replay resumes, rejects bad snapshots whole, and refuses another folder."""

import shutil
import time

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
    """The market begins at UNTIL - HOURS; the clock then moves on as a real one does, so that the market's
    course must not depend on how many milliseconds pass between two of its readings (they differ between
    the direct run and the files' writer)."""
    first: list[float] = []

    def clock() -> int:
        if not first:
            first.append(time.monotonic())
        return UNTIL + int((time.monotonic() - first[0]) * 1000)

    return SimulatedSource("tiny", 9, 900, path / "simulator.npz", history_ms=HOURS * 3_600_000, clock=clock)


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
    assert len(direct[0]["order snapshots"]) == HOURS * 4 and len(direct[0]["orders"]) > 100  # from the L4 files
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
    backfill(
        source,
        Ingestor(store),
        stop=stop,
        status=status,
        progress=lambda done, total, result: stop.set() if done == 5 else None,
    )
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


def test_a_bad_line_in_an_event_file_never_blocks_later_snapshots(node_dir, direct, tmp_path, caplog):
    """A line that is not a block in the fills, and a cut last line in the misc events: every snapshot goes in,
    the rest of each file is read, and the skips are counted in the source's health and logged."""
    folder = tmp_path / "node"
    shutil.copytree(node_dir, folder)
    fills = sorted((folder / "node_fills_by_block" / "hourly").glob("*/*"), key=lambda p: int(p.name))
    lines = fills[0].read_bytes().splitlines(keepends=True)
    fills[0].write_bytes(b"".join([*lines[:1], b"{half a block\n", *lines[1:]]))
    misc = sorted((folder / "misc_events_by_block" / "hourly").glob("*/*"), key=lambda p: int(p.name))
    misc[-1].write_bytes(misc[-1].read_bytes() + b'{"local_time": "2026-')
    status = IngestStatus()
    source = replay(folder, tmp_path)
    replayed, counts = ingest_all(source, tmp_path, status=status)
    assert status.rejected == 0 and counts["state_updates"] == HOURS * 4
    assert replayed == direct[0]  # every good block is there: the bad lines held nothing
    assert source.health()["skipped_total"] == {"lines that are not blocks": 1, "cut last lines": 1}
    assert any("skipped what could not be read" in r.getMessage() for r in caplog.records)


def test_a_snapshot_still_being_written_is_read_again_not_rejected(node_dir, tmp_path):
    from hyperscope.errors import SourceUnavailable
    from hyperscope.sources.hyperliquid.snapshot import InvalidSnapshot

    folder = tmp_path / "node"
    shutil.copytree(node_dir, folder)
    first = next(iter(snapshot_files(folder).values()))
    whole = first.read_bytes()
    first.write_bytes(whole[: len(whole) // 3])  # the node is half-way through writing it
    now = [first.stat().st_mtime + 1]
    source = NodeSource(folder, tmp_path / "source.npz", watch=True, fills_wait_seconds=0, clock=lambda: now[0])
    store = open_store(tmp_path / "s.duckdb")
    try:
        source.attach(store)
        due = source._due()
        with pytest.raises(SourceUnavailable, match="may still be being written"):
            source._update(*due[0])
        assert source.last_height is None and source.rejected is None  # not given up on
        first.write_bytes(whole)  # finished
        assert source._update(*due[0]).height == due[0][0]
        # a file cut for good (older than the settle time) is rejected once, and the source moves on
        second = due[1][1]
        second.write_bytes(second.read_bytes()[:100])
        now[0] = second.stat().st_mtime + 3600
        with pytest.raises(InvalidSnapshot):
            source._update(*due[1])
        assert source.last_height == due[1][0] and source.rejected["height"] == due[1][0]
    finally:
        store.close()


def test_the_written_files_carry_the_real_shapes_and_their_replay_rejects_and_skips_nothing(node_dir, tmp_path):
    """The shapes real-shapes.md lists are in what the simulator writes (so the round trip above covers them),
    and reading them loses nothing: no snapshot rejected, no record skipped."""
    import msgpack
    import orjson

    raw = msgpack.unpackb(next(iter(snapshot_files(node_dir).values())).read_bytes(), raw=False, strict_map_key=False)
    assert list(raw["exchange"])[:2] == ["locus", "perp_dexs"]  # locus before the books, as real files
    locus = raw["exchange"]["locus"]
    assert {"ust", "blp", "c_staking", "spot_books"} <= set(locus)
    assert {mode for _, mode in locus["ust"]} == {"u", "d", "p"}
    entries = [
        e for _, state in locus["cls"][0]["user_states"]["user_to_state"] for e in state.get("p", {}).get("p", [])
    ]
    leverage_only = [e for e in entries if "s" not in e[1]]
    assert leverage_only and all("e" not in e[1] and "l" in e[1] and "M" in e[1] for e in leverage_only)
    kinds, tags = set(), []
    for path in (node_dir / "misc_events_by_block" / "hourly").glob("*/*"):
        for line in path.read_bytes().splitlines():
            for event in orjson.loads(line)["events"]:
                ((tag, body),) = event["inner"].items()
                tags.append((tag, body.get("is_finalized")))
                if tag == "LedgerUpdate":
                    kinds.add(body["delta"]["type"])
    assert {
        "deposit",
        "withdraw",
        "accountClassTransfer",
        "vaultDeposit",
        "vaultCreate",
        "vaultDistribution",
        "perpDexClassTransfer",
        "vaultLeaderCommission",
        "spotTransfer",
        "rewardsClaim",
        "send",
    } <= kinds
    assert ("CWithdrawal", False) in tags and ("CWithdrawal", True) in tags
    status = IngestStatus()
    source = replay(node_dir, tmp_path)
    _, counts = ingest_all(source, tmp_path, status=status)
    assert status.rejected == 0 and counts["state_updates"] == HOURS * 4
    assert source.health()["skipped_total"] == {}
    last = msgpack.unpackb(list(snapshot_files(node_dir).values())[-1].read_bytes(), raw=False, strict_map_key=False)
    modes = [mode for _, mode in last["exchange"]["locus"]["ust"]]
    names = {"u": "unified", "d": "dex abstraction", "p": "portfolio margin"}
    health = source.health()
    assert health["account_modes"] == {names[m]: modes.count(m) for m in "udp"}
    # wallets in those modes holding cross positions: their spot balances back them (collateral.py)
    assert 0 < health["collateral_approximated_wallets"] < len(modes)
