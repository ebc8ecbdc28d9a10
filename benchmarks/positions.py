"""Latency of GET /api/external/positions over 30 days of bench-scale lifecycles.

Builds a store with a few bench-scale state updates (300k wallets, ~200k open positions) and then adds 30
days of closed lifecycles drawn from the same wallets and coins (the rate a bench-scale market closes them at
a 15-minute cadence, measured first), appended in close-time order as a running store appends them. Then it
starts `hyperscope serve` on it in its own process and times pages of 50 over real HTTP (one client, one
request at a time), each request with different parameters so the response cache never answers:

    .venv/bin/python benchmarks/positions.py [--days 30] [--requests 200] [--dir DIR] [--postgresql]

With --postgresql the same closed lifecycles (read from the DuckDB store in DIR, built first if missing) go into
a throwaway PostgreSQL server's database (the local server binaries, scripts/postgres-binaries) holding a few
bench-scale state updates of its own, and `serve` reads that database.

Prints p50/p99 per kind of query: by coin (the largest, and a mid-sized one), by address, by address list,
ordered by PnL, open only. A store already built in DIR is reused.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import served  # noqa: E402

DAY_MS = 86_400_000


def build(directory: Path, days: int) -> None:
    from hyperscope.ingest import Ingestor
    from hyperscope.sources.simulator import Simulator, preset
    from hyperscope.store import open_store
    from hyperscope.store.duckdb import WALLET_KEY

    store = open_store(directory / "hyperscope.duckdb", memory_mib=1024)
    now = int(time.time() * 1000) // 900_000 * 900_000
    sim = Simulator(preset("bench", seed=7), genesis_ms=now - 4 * 900_000)
    ingestor = Ingestor(store)
    closed_per_update = []
    for k in range(3, -1, -1):
        t = time.perf_counter()
        result = ingestor.ingest(sim.step(now - k * 900_000))
        closed_per_update.append(result.closed)
        print(f"bench state update ingested in {time.perf_counter() - t:.1f} s ({result.positions} open)")
    rate = int(np.mean(closed_per_update[1:]))
    total = rate * 96 * days
    print(f"{rate} lifecycles close per 15-minute update: adding {total:,} closed lifecycles over {days} days")
    open_rows = store.load_open_positions()
    rng = np.random.default_rng(1)
    template = store._cursor().sql("SELECT * FROM positions_closed LIMIT 0").to_arrow_table().schema
    chunk = 1_000_000
    key = store.next_lifecycle_key()
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        pick = pa.array(rng.integers(0, open_rows.num_rows, n))
        sample = open_rows.take(pick)
        # lifecycles are appended as they close: close times rise from chunk to chunk, as in a real store
        span = days * DAY_MS * n // total
        close = now - days * DAY_MS + days * DAY_MS * start // total + np.sort(rng.integers(0, max(span, 1), n))
        opened = close - np.minimum(rng.exponential(2 * DAY_MS, n), 60 * DAY_MS).astype(np.int64)
        ids = np.char.add(np.char.mod("%016x", rng.integers(0, 2**62, n)), "0" * 48)
        columns = {}
        for field in template:
            name = field.name
            if name == "key":
                columns[name] = pa.array(np.arange(key + start, key + start + n), pa.int64())
            elif name == "id":
                columns[name] = pa.array(ids)
            elif name in ("open_time", "created_at"):
                columns[name] = pa.array(opened, pa.int64())
            elif name in ("close_time", "updated_at"):
                columns[name] = pa.array(close, pa.int64())
            elif name in ("height",):
                columns[name] = pa.array(np.full(n, 1, np.int64))
            elif name in ("mid_px", "premium"):
                columns[name] = pa.array(rng.random(n))
            elif name in ("sz_decimals", "max_leverage"):
                columns[name] = pa.array(np.full(n, 3, np.int32))
            elif name == "wallet":
                columns[name] = pa.nulls(n, pa.int64())
            else:
                column = sample.column(name)
                columns[name] = column.cast(pa.int64()) if pa.types.is_timestamp(column.type) else column
        table = pa.table(columns)
        store._con.register("synthetic", table)
        store._con.execute(
            f"INSERT INTO positions_closed SELECT * REPLACE ({WALLET_KEY} AS wallet) FROM synthetic ORDER BY close_time"
        )
        store._con.unregister("synthetic")
        print(f"  {start + n:,} / {total:,}")
    store.close()


def build_postgres(directory: Path, url: str) -> None:
    """A PostgreSQL store with four bench-scale state updates and the DuckDB store's closed lifecycles,
    copied in close-time order in chunks (each with its daily partitions), as a running writer appends them."""
    import duckdb

    from hyperscope.ingest import Ingestor
    from hyperscope.sources.simulator import Simulator, preset
    from hyperscope.store import open_store

    store = open_store(url)
    now = int(time.time() * 1000) // 900_000 * 900_000
    sim = Simulator(preset("bench", seed=7), genesis_ms=now - 4 * 900_000)
    ingestor = Ingestor(store)
    for k in range(3, -1, -1):
        ingestor.ingest(sim.step(now - k * 900_000))
    key = store.next_lifecycle_key()
    copied = 0
    with duckdb.connect(str(directory / "hyperscope.duckdb"), read_only=True) as source:
        total = source.execute("SELECT count(*) FROM positions_closed").fetchall()[0][0]
        reader = source.execute(
            "SELECT * REPLACE (key + ? AS key) FROM positions_closed ORDER BY close_time", [key]
        ).to_arrow_reader(500_000)
        for batch in reader:
            rows = pa.Table.from_batches([batch])
            close = rows.column("close_time").to_numpy()
            store._ensure_partitions({"positions_closed": set(np.unique(close // DAY_MS).tolist())})
            con = store._live_writer()
            with con.transaction():
                store._copy(con.cursor(), "positions_closed", rows)
            copied += rows.num_rows
            print(f"  {copied:,} / {total:,} into PostgreSQL", flush=True)
    with store._live_writer().cursor() as cur:
        cur.execute("ANALYZE positions_closed")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--postgresql", action="store_true", help="serve the lifecycles from PostgreSQL")
    parser.add_argument("--postgresql-url", help="a database --postgresql filled before: serve it as it is")
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="hs-positions-"))
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "hyperscope.duckdb").exists():
        build(directory, args.days)

    import duckdb

    from hyperscope.domain.timefmt import iso_ms

    with duckdb.connect(str(directory / "hyperscope.duckdb"), read_only=True) as con:
        closed = con.execute("SELECT count(*) FROM positions_closed").fetchall()[0][0]
        coins = [
            c
            for (c,) in con.execute("SELECT coin FROM positions_closed GROUP BY coin ORDER BY count(*) DESC").fetchall()
        ]
        addresses = [a for (a,) in con.execute("SELECT DISTINCT address FROM positions_closed LIMIT 5000").fetchall()]
        opened = con.execute("SELECT count(*) FROM open_states").fetchall()[0][0]
    print(f"store: {closed:,} closed lifecycles, {opened:,} open")
    rng = np.random.default_rng(3)
    week_ago = int(time.time() * 1000) - 7 * DAY_MS
    kinds = {
        "coin BTC (largest), openTime": lambda i: {"coin": coins[0], "start": iso_ms(week_ago + i)},
        "coin, mid-sized, openTime": lambda i: {"coin": coins[len(coins) // 2], "start": iso_ms(week_ago + i)},
        "coin, orderBy=pnl desc": lambda i: {
            "coin": coins[i % 20],
            "orderBy": "pnl",
            "order": "desc",
            "start": iso_ms(week_ago + i),
        },
        "one address": lambda i: {"address": addresses[i % len(addresses)]},
        "five addresses": lambda i: {"address": list(rng.choice(addresses, 5))},
        "coin, open=true": lambda i: {"coin": coins[i % 20], "open": "true", "start": iso_ms(week_ago + i)},
        "no filter, orderBy=pnl": lambda i: {"orderBy": "pnl", "order": "desc", "start": iso_ms(week_ago + i)},
    }
    pg = None
    target = None
    if args.postgresql_url:
        target = args.postgresql_url
    elif args.postgresql:
        from tests.pgserver import PostgresServer

        pg = PostgresServer().start()
        target = pg.create_database("positions")
        build_postgres(directory, target)
    try:
        run(args, directory, kinds, target)
    finally:
        if pg is not None:
            pg.stop()


def run(args: argparse.Namespace, directory: Path, kinds: dict, target: str | None) -> None:
    import httpx

    # the server in its own process, as users run it; this process only sends requests, one at a time
    serving_dir = directory / "pg-serve" if target else directory
    serving_dir.mkdir(exist_ok=True)
    with served(serving_dir, args.port, duckdb_memory_mib=1024, store=target) as (base, key):
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            http.get("/api/external/positions", params={"limit": 50})  # warm up
            for name, params in kinds.items():
                times = []
                for i in range(args.requests):
                    t = time.perf_counter()
                    r = http.get("/api/external/positions", params={"limit": 50, **params(i)})
                    times.append((time.perf_counter() - t) * 1000)
                    if r.status_code != 200:
                        raise SystemExit(f"{name}: {r.status_code} {r.text[:200]}")
                times.sort()
                p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
                print(
                    f"{name:32s} p50 {statistics.median(times):7.1f} ms  p99 {p99:7.1f} ms  ({len(times)} "
                    f"requests, {len(r.json()['positions'])} rows in the last page)"
                )


if __name__ == "__main__":
    main()
