"""Seconds per state update (validate + tracking + metrics + store) and peak memory at bench scale.

.venv/bin/python benchmarks/ingest.py [--scale bench] [--updates 8]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from hyperscope.ingest import Ingestor
from hyperscope.settings import Settings
from hyperscope.sources.simulator import Simulator, preset
from hyperscope.store import open_store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="bench")
    parser.add_argument("--updates", type=int, default=8)
    parser.add_argument("--duckdb-memory-mib", type=int, default=Settings(scale="bench").duckdb_memory)
    args = parser.parse_args()
    proc = psutil.Process()
    t0 = 1_767_225_600_000
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "bench.duckdb", memory_mib=args.duckdb_memory_mib)
        ingestor = Ingestor(store)
        sim = Simulator(preset(args.scale), genesis_ms=t0)
        peak = proc.memory_info().rss
        totals, stages = [], []
        for k in range(1, args.updates + 1):
            started = time.perf_counter()
            update = sim.step(t0 + k * 900_000)
            sim_s = time.perf_counter() - started
            result = ingestor.ingest(update)
            peak = max(peak, proc.memory_info().rss)
            label = "first (all positions new)" if k == 1 else "steady"
            print(
                f"update {k}: {result.positions:,} positions, {update.wallets.num_rows:,} wallets | simulate "
                f"{sim_s:.3f}s | ingest {result.total_seconds:.3f}s "
                + " ".join(f"{s}={v:.3f}" for s, v in result.seconds.items())
                + f" ({label})"
            )
            if k > 1:
                totals.append(result.total_seconds)
                stages.append(result.seconds)
        store.close()
    print(f"\nsteady-state ingest per update: median {statistics.median(totals):.3f}s, max {max(totals):.3f}s")
    for stage in stages[0]:
        print(f"  {stage:9s} median {statistics.median(s.get(stage, 0.0) for s in stages):.3f}s")
    print(f"peak RSS {peak / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
