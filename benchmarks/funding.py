"""The /v4 funding routes under load: asset metrics for 10 assets x 30 days hourly, and a year of 300 coins as
NDJSON.

Builds a store with one simulated state update (300 coins) and a year of hourly funding rows for every market
(synthetic rates around 0.01%/8h, open interest per coin), starts `hyperscope serve` on it in its own process,
then:
- drives `/v4/timeseries/asset-metrics?assets=<10>&metrics=<2>&frequency=1h&page_size=10000` over 30 days with 64
  connections from a separate process (the `benchmarks/api.py` load generator; budget >= 500 req/s, p99 < 100 ms);
- streams `format=json_stream` for all assets over the year and reports MB/s (budget >= 50 MB/s).

    .venv/bin/python benchmarks/funding.py [--dir DIR] [--seconds 10]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import served  # noqa: E402

HOUR = 3_600_000
YEAR_HOURS = 365 * 24
METRICS = "futures_aggregate_funding_rate_usd_margin_8h_period,futures_cumulative_funding_rate_usd_margin_rolling_1d"


def build(directory: Path) -> None:
    from hyperscope.ingest import Ingestor
    from hyperscope.sources.simulator import Simulator, preset
    from hyperscope.store import open_store

    store = open_store(directory / "hyperscope.duckdb", memory_mib=1024)
    now = int(time.time() * 1000) // HOUR * HOUR
    sim = Simulator(preset("small", seed=7), genesis_ms=now - 900_000)
    Ingestor(store).ingest(sim.step(now))
    coins = store.coins()
    rng = np.random.default_rng(1)
    hours = now - np.arange(YEAR_HOURS, 0, -1, dtype=np.int64) * HOUR
    for row in coins:
        rate = 0.0001 / 8 + rng.normal(0, 2e-6, YEAR_HOURS)
        oi = np.abs(rng.lognormal(14, 2)) * (1 + 0.1 * rng.standard_normal(YEAR_HOURS))
        table = pa.table(
            {
                "time": hours,
                "coin": [row["coin"]] * YEAR_HOURS,
                "dex": [row["dex"]] * YEAR_HOURS,
                "rate": rate,
                "open_interest_usd": np.abs(oi),
                "height": np.full(YEAR_HOURS, 1),
            }
        )
        store._con.register("incoming", table)
        store._con.execute("INSERT INTO funding_hourly SELECT * FROM incoming")
        store._con.unregister("incoming")
    print(f"{len(coins)} markets x {YEAR_HOURS} hours of funding written")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--port", type=int, default=8767)
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="hs-funding-"))
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "hyperscope.duckdb").exists():
        build(directory)
    with served(directory, args.port, duckdb_memory_mib=1024) as (base, key):
        with httpx.Client(base_url=base, timeout=600, headers={"Authorization": f"Bearer {key}"}) as http:
            assets = http.get("/v4/catalog-v2/asset-metrics").json()["data"]
            names = [a["asset"] for a in assets][:10]
            start = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(time.time() - 30 * 86_400))
            path = (
                f"/v4/timeseries/asset-metrics?assets={','.join(names)}&metrics={METRICS}&frequency=1h"
                f"&page_size=10000&start_time={start}"
            )
            first = http.get(path)
            print(f"{path[:90]}...: {len(first.json()['data'])} rows, {len(first.content) / 1e6:.2f} MB per response")
            if shutil.which("wrk"):  # a C load generator measures the server, not the client
                for run, conns in (("warm-up", 64), ("64 connections", 64), ("8 connections", 8)):
                    cmd = [
                        "wrk",
                        "-t1",
                        f"-c{conns}",
                        f"-d{2 if run == 'warm-up' else int(args.seconds)}s",
                        "--latency",
                        "-H",
                        f"Authorization: Bearer {key}",
                        base + path,
                    ]
                    text = subprocess.run(cmd, capture_output=True, text=True).stdout
                    if run != "warm-up":
                        wanted = [
                            ln.strip()
                            for ln in text.splitlines()
                            if ln.strip().startswith(("50%", "99%", "Requests/", "Transfer/"))
                        ]
                        print(f"asset-metrics, 10 assets x 30 days, {run}: " + " | ".join(wanted))
            else:
                child = subprocess.run(
                    [
                        sys.executable,
                        str(Path(__file__).with_name("api.py")),
                        "--child",
                        base + path,
                        key,
                        str(args.seconds),
                        "64",
                    ],
                    capture_output=True,
                    text=True,
                )
                print(child.stdout.strip() or child.stderr.strip()[-500:])
            every = ",".join(a["asset"] for a in assets)
            t = time.perf_counter()
            size = rows = 0
            with http.stream(
                "GET", f"/v4/timeseries/asset-metrics?assets={every}&metrics={METRICS}&frequency=1h&format=json_stream"
            ) as stream:
                for chunk in stream.iter_bytes():
                    size += len(chunk)
                    rows += chunk.count(b"\n")
            seconds = time.perf_counter() - t
            print(
                f"json_stream, {len(assets)} assets x 1 year hourly: {rows:,} rows, {size / 1e6:.0f} MB in "
                f"{seconds:.1f} s = {size / 1e6 / seconds:.1f} MB/s"
            )


if __name__ == "__main__":
    main()
