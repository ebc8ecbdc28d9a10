"""Requests/s and p50/p99 latency of the running API, from a separate load-generating process.

Uses wrk (Debian package `wrk`) when it is installed, else an httpx load generator in a child process (which
tops out near 300 requests/s on 2 cores and then measures itself more than the server).
Starts `hyperscope serve` on a bench-scale store (built with `hyperscope backfill --scale bench --hours 24
--data-dir DIR [--store postgresql://...]` beforehand) in its own processes, then drives it with 64
concurrent keep-alive connections; with several `--workers` counts and stores, prints them side by side.

    .venv/bin/python benchmarks/api.py --data-dir DIR [--store URL,URL] [--workers 1,2] [--runs 5] [--seconds 8]

The /v4 (Coin Metrics) routes have their own driver, `benchmarks/funding.py`, which builds a store with a year of
hourly funding first and reuses this file's load generator when wrk is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx

sys.path.insert(0, os.path.dirname(__file__))
from serving import served  # noqa: E402


async def drive(url: str, headers: dict[str, str], seconds: float, connections: int) -> list[float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                r = await client.get(url)
                latencies.append(time.perf_counter() - t)
                if r.status_code != 200:
                    raise SystemExit(f"{url}: {r.status_code} {r.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(connections)))
    return latencies


def load(url: str, key: str, seconds: float, connections: int) -> None:
    """Runs in a child process so the server and the load generator do not share an interpreter."""
    lat = asyncio.run(drive(url, {"Authorization": f"Bearer {key}"}, seconds, connections))
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
    print(
        f"{url.split('/', 3)[3][:60]:60s} {len(lat) / seconds:8.0f} req/s  p50 {p(0.5):6.1f} ms  "
        f"p99 {p(0.99):6.1f} ms  ({len(lat)} requests)"
    )


def _ms(text: str) -> float:
    """wrk's latency (850.00us, 12.34ms, 1.20s) in milliseconds."""
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def wrk(base: str, path: str, key: str, seconds: int, connections: int) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of one wrk run."""
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-H",
        f"Authorization: Bearer {key}",
        base + path,
    ]
    text = subprocess.run(cmd, capture_output=True, text=True).stdout
    got: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] in (["50%"], ["99%"]):
            got[parts[0]] = _ms(parts[1])
        elif line.startswith("Requests/sec:"):
            got["rps"] = float(parts[1])
    return got.get("rps", 0.0), got.get("50%", 0.0), got.get("99%", 0.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--store", default="", help="comma-separated stores (default: the DuckDB file of --data-dir)")
    parser.add_argument("--workers", default="1", help="comma-separated worker counts, e.g. 1,2")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--paths", default="coins,coin-day,general-week")
    args = parser.parse_args()
    now = datetime.now(tz=UTC)
    day = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    week = (now - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    known = {
        "coins": "/api/external/positions/coins",
        "coin-day": f"/api/external/position-metrics/coin/BTC?start={day}",
        "general-week": f"/api/external/position-metrics/general?start={week}",
    }
    paths = [known[p] for p in args.paths.split(",")]
    rows = []
    for store in args.store.split(",") if args.store else [None]:
        for workers in (int(w) for w in args.workers.split(",")):
            label = f"{'postgresql' if store and store.startswith('postgres') else 'duckdb'}, {workers} worker(s)"
            with served(args.data_dir, args.port, store=store, workers=workers) as (base, key):
                for path in paths:
                    if not shutil.which("wrk"):  # a C load generator measures the server, not the client
                        child = subprocess.run(
                            [
                                sys.executable,
                                __file__,
                                "--child",
                                base + path,
                                key,
                                str(args.seconds),
                                str(args.connections),
                            ],
                            capture_output=True,
                            text=True,
                        )
                        print(label, child.stdout.strip() or child.stderr.strip()[-500:])
                        continue
                    wrk(base, path, key, 2, args.connections)  # warm-up
                    runs = [wrk(base, path, key, int(args.seconds), args.connections) for _ in range(args.runs)]
                    rows.append((label, path, runs))
                    print(
                        f"{label:26s} {path[:48]:48s} "
                        + " | ".join(f"{r:,.0f}/s p50 {p50:.1f} p99 {p99:.1f} ms" for r, p50, p99 in runs),
                        flush=True,
                    )
    if rows:
        print(f"\n{'store, workers':26s} {'route':48s} {'req/s (min-max)':>18s} {'p99 ms (min-max)':>18s}")
        for label, path, runs in rows:
            rps = [r for r, _, _ in runs]
            p99 = [p for _, _, p in runs]
            print(f"{label:26s} {path[:48]:48s} {min(rps):8,.0f}-{max(rps):<8,.0f} {min(p99):8.1f}-{max(p99):<8.1f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        load(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
