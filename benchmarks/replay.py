"""The round trip at bench scale: the simulated market written as a node's files, replayed, compared.

    .venv/bin/python benchmarks/replay.py [--scale bench] [--hours 2]

Prints the time to write the node folder, to ingest the simulator directly and to replay the folder, and
whether every metric row and position lifecycle of the two stores is the same.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import orjson

from hyperscope.ingest import Ingestor
from hyperscope.pipeline import backfill
from hyperscope.sources.hyperliquid.build import Anchors
from hyperscope.sources.hyperliquid.node import NodeSource
from hyperscope.sources.simulator.nodewriter import write_node_dir
from hyperscope.sources.simulator.source import SimulatedSource
from hyperscope.store import open_store

UNTIL = 1_767_225_600_000
TABLES = {
    "metrics_general": "id",
    "metrics_coin": "id",
    "metrics_coin_segment": "id",
    "positions_open": "id",
    "positions_closed": "key",
    "state_updates": "height",
}


def contents(store) -> dict[str, list]:
    rows = {t: store._dicts(f"SELECT * FROM {t} ORDER BY {k}", []) for t, k in TABLES.items()}
    for r in rows["state_updates"]:  # ingest timings differ by nature
        for k in list(r):
            if k not in ("height", "time"):
                del r[k]
    return rows


def ingest(source, path: Path) -> tuple[float, dict[str, list]]:
    store = open_store(path / "s.duckdb", memory_mib=1024)
    try:
        source.attach(store)
        started = time.perf_counter()
        done = backfill(source, Ingestor(store))
        seconds = time.perf_counter() - started
        print(f"  {done} updates in {seconds:.1f} s ({seconds / max(done, 1):.2f} s per update)", flush=True)
        return seconds, contents(store)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="bench")
    parser.add_argument("--hours", type=float, default=2.0)
    args = parser.parse_args()
    history = int(args.hours * 3_600_000)

    def simulated(path: Path) -> SimulatedSource:
        return SimulatedSource(args.scale, 7, 900, path / "sim.npz", history_ms=history, clock=lambda: UNTIL)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "node"
        for name in ("writer", "direct", "replay"):
            (root / name).mkdir()
        started = time.perf_counter()
        written = write_node_dir(folder, simulated(root / "writer"))
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(f"write: {written} snapshots, {size / 2**20:,.0f} MiB in {time.perf_counter() - started:.1f} s")
        print("simulator, directly:")
        _, direct = ingest(simulated(root / "direct"), root / "direct")
        anchors = Anchors.from_leaderboard(orjson.loads((folder / "hyperscope" / "leaderboard.json").read_bytes()))
        print("replay of the node folder:")
        _, replayed = ingest(
            NodeSource(folder, root / "replay" / "source.npz", watch=False, anchors=anchors), root / "replay"
        )
        same = [t for t in TABLES if direct[t] == replayed[t]]
        rows = sum(len(v) for v in direct.values())
        print(f"identical tables: {len(same)} of {len(TABLES)} ({rows:,} rows compared)")
        for t in TABLES:
            if t not in same:
                print(f"  differs: {t}")


if __name__ == "__main__":
    main()
