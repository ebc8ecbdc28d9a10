"""Requests/s and p50/p99 latency of the running API, from a separate load-generating process.

Uses wrk (Debian package `wrk`) when it is installed, else an httpx load generator in a child process (which
tops out near 300 requests/s on 2 cores and then measures itself more than the server).
Starts `hyperscope serve` on a bench-scale store (built with `hyperscope backfill --scale bench --hours 24
--data-dir DIR` beforehand) in its own process, then drives it with 64 concurrent keep-alive connections.

    .venv/bin/python benchmarks/api.py --data-dir DIR [--seconds 10] [--connections 64]

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with served(args.data_dir, args.port) as (base, key):
        now = datetime.now(tz=UTC)
        day = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        week = (now - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for path in ("/api/external/positions/coins", f"/api/external/position-metrics/coin/BTC?start={day}",
                     f"/api/external/position-metrics/general?start={week}"):  # fmt: skip
            if shutil.which("wrk"):  # a C load generator measures the server, not the client
                for run in ("warm-up", "run 1", "run 2", "run 3"):
                    seconds = 2 if run == "warm-up" else int(args.seconds)
                    cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{seconds}s", "--latency",
                           "-H", f"Authorization: Bearer {key}", base + path]  # fmt: skip
                    text = subprocess.run(cmd, capture_output=True, text=True).stdout
                    if run == "warm-up":
                        continue
                    wanted = [
                        ln.strip() for ln in text.splitlines() if ln.strip().startswith(("50%", "99%", "Requests/"))
                    ]
                    print(f"{path[:70]:70s} {run}: " + " | ".join(wanted))
                continue
            child = subprocess.run([sys.executable, __file__, "--child", base + path, key, str(args.seconds),
                                    str(args.connections)], capture_output=True, text=True)  # fmt: skip
            print(child.stdout.strip() or child.stderr.strip()[-500:])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        load(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
