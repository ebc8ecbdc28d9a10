"""Seconds per state update (validate + tracking + metrics + store) and peak memory at bench scale, on each
backend, printed side by side.

.venv/bin/python benchmarks/ingest.py [--scale bench] [--updates 8] [--store duckdb,postgresql]

`--store` takes backend names (a temporary DuckDB file; a throwaway PostgreSQL server started from the
local server binaries, see scripts/postgres-binaries) or a postgresql:// URL of an empty database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

from hyperscope.ingest import Ingestor
from hyperscope.settings import Settings
from hyperscope.sources.simulator import Simulator, preset
from hyperscope.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.pgserver import PostgresServer  # noqa: E402


def run(target: str | Path, args: argparse.Namespace) -> dict[str, float]:
    proc = psutil.Process()
    t0 = 1_767_225_600_000
    store = open_store(target, memory_mib=args.duckdb_memory_mib)
    ingestor = Ingestor(store)
    sim = Simulator(preset(args.scale), genesis_ms=t0)
    peak = proc.memory_info().rss
    totals, stores, stages = [], [], []
    for k in range(1, args.updates + 1):
        started = time.perf_counter()
        update = sim.step(t0 + k * 900_000)
        sim_s = time.perf_counter() - started
        result = ingestor.ingest(update)
        idle = ingestor.between_updates()  # the store's upkeep (a DuckDB checkpoint), outside the update
        peak = max(peak, proc.memory_info().rss)
        label = "first (all positions new)" if k == 1 else "steady"
        print(
            f"  update {k}: {result.positions:,} positions, {update.wallets.num_rows:,} wallets | simulate "
            f"{sim_s:.3f}s | ingest {result.total_seconds:.3f}s "
            + " ".join(f"{s}={v:.3f}" for s, v in result.seconds.items())
            + f" | between updates {idle:.3f}s ({label})",
            flush=True,
        )
        if k > 1:
            totals.append(result.total_seconds)
            stores.append(result.seconds.get("store", 0.0))
            stages.append(result.seconds)
    store.close()
    return {
        "median": statistics.median(totals),
        "max": max(totals),
        "store": statistics.median(stores),
        "peak_gib": peak / 2**30,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="bench")
    parser.add_argument("--updates", type=int, default=8)
    parser.add_argument("--store", default="duckdb,postgresql")
    parser.add_argument("--duckdb-memory-mib", type=int, default=Settings(scale="bench").duckdb_memory)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.store.split(","):
            server = None
            if name == "duckdb":
                target: str | Path = Path(tmp) / "bench.duckdb"
            elif name == "postgresql":
                server = PostgresServer(
                    settings={"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
                ).start()  # durable, as deployed
                target = server.create_database("bench")
            else:
                target = name
            print(f"{name.split('@')[-1]}:", flush=True)
            try:
                results[name.split("@")[-1]] = run(target, args)
            finally:
                if server is not None:
                    server.stop()
                elif isinstance(target, Path) and target.exists():
                    os.remove(target)
    print(f"\nsteady-state ingest per update at {args.scale} scale ({args.updates - 1} updates):")
    print(f"  {'backend':28s} {'median':>8s} {'max':>8s} {'store write':>12s} {'peak RSS':>9s}")
    for name, r in results.items():
        print(f"  {name:28s} {r['median']:7.3f}s {r['max']:7.3f}s {r['store']:11.3f}s {r['peak_gib']:7.2f}GiB")


if __name__ == "__main__":
    main()
