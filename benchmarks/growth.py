"""Store growth under the default retention, as `run` ingests: a day of 15-minute backfill, then live-paced
state updates (one per `--interval` seconds of state-update time), as fast as this machine can.

    .venv/bin/python benchmarks/growth.py [--scale small] [--hours 3] [--interval 5]

Prints the store's size on disk every simulated half hour, then the bytes each table holds and the
growth per day that the retention settings lead to. No wall-clock waiting: only state-update time passes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hyperscope.ingest import Ingestor
from hyperscope.settings import Settings
from hyperscope.sources.simulator import Simulator, preset
from hyperscope.store import open_store
from hyperscope.store.base import Retention

HOUR = 3_600_000


def table_bytes(store) -> dict[str, int]:
    con = store._con
    con.execute("CHECKPOINT")
    names = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall()
    ]
    out = {}
    for name in names:
        blocks = con.execute(
            f"SELECT count(DISTINCT block_id) FROM pragma_storage_info('{name}') WHERE block_id >= 0"
        ).fetchall()[0][0]
        out[name] = blocks * 262_144
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="small")
    parser.add_argument("--hours", type=float, default=3.0, help="hours of live-paced state-update time")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds of state-update time per update")
    args = parser.parse_args()
    settings = Settings(scale=args.scale)
    policy = Retention.from_settings(settings)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "growth.duckdb"
        store = open_store(path, memory_mib=settings.duckdb_memory)
        ingestor = Ingestor(store, policy)
        t0 = 1_767_225_600_000
        sim = Simulator(preset(args.scale), genesis_ms=t0)
        t = t0
        started = time.perf_counter()
        for _ in range(96):  # the day of backfill `run` starts with
            t += 900_000
            ingestor.ingest(sim.step(t))
        print(f"{args.scale}: after the 24 h backfill: {path.stat().st_size / 2**20:.0f} MiB on disk", flush=True)
        step = int(args.interval * 1000)
        live = int(args.hours * HOUR / step)
        every = int(HOUR / 2 / step)
        for k in range(1, live + 1):
            t += step
            ingestor.ingest(sim.step(t))
            if k % every == 0:
                size = path.stat().st_size / 2**20
                minutes = (time.perf_counter() - started) / 60
                print(
                    f"  +{k * step / HOUR:4.1f} h live ({k} updates): {size:7.0f} MiB on disk, {minutes:.1f} min",
                    flush=True,
                )
        sizes = table_bytes(store)
        total = sum(sizes.values())
        print(f"tables after {args.hours:g} h live: {total / 2**20:.0f} MiB in use")
        for name, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
            if size > 1 << 20:
                print(f"  {name:24s} {size / 2**20:8.1f} MiB")
        store.close()


if __name__ == "__main__":
    main()
