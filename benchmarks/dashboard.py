"""Dashboard server render time per page and what a page weighs, against `hyperscope serve` over a store.

Build the store first (`hyperscope backfill --scale bench --hours 26 --data-dir DIR`), then:

    .venv/bin/python benchmarks/dashboard.py --data-dir DIR [--rounds 20]

Signs in with a fresh key through the sign-in form, requests every page `rounds` times in turn (one request at
a time: the server's own render time, not a load test) and prints per page the first request (which builds the
page's data for the store's newest state update), p50 and p95, then its bytes gzipped, alone and with the
assets it loads (the browser fetches the assets once; they are counted in full). The store is not written
meanwhile, so every request after the first reuses the page's data, as views between two updates do.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import statistics
import sys
import time

import httpx

sys.path.insert(0, os.path.dirname(__file__))
from serving import served  # noqa: E402

PAGES = [
    "/dashboard",
    "/dashboard/perps",
    "/dashboard/coin/BTC",
    "/dashboard/cohorts",
    "/dashboard/cohorts/3",
    "/dashboard/heatmap",
    "/dashboard/heatmap/cell?coin=BTC&segment=4",
    "/dashboard/leaderboards?period=week",
    "/dashboard/coin/BTC/liquidations",
    "/dashboard/cohorts/migration?category=size",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--port", type=int, default=8911)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    with served(args.data_dir, args.port) as (base, key), httpx.Client(base_url=base, timeout=120) as http:
        signed = http.post("/dashboard/sign-in", content=f"key={key}&next=/dashboard")
        assert signed.status_code == 303, signed.text
        times: dict[str, list[float]] = {p: [] for p in PAGES}
        bodies: dict[str, bytes] = {}
        for _ in range(args.rounds):
            for page in PAGES:
                t = time.perf_counter()
                r = http.get(page)
                times[page].append(time.perf_counter() - t)
                assert r.status_code == 200, (page, r.status_code, r.text[:200])
                bodies[page] = r.content
        assets = sorted(set(re.findall(rb'(?:src|href)="(/dashboard/static/[^"]+)"', bodies["/dashboard"])))
        asset_bytes = sum(len(gzip.compress(http.get(a.decode()).content)) for a in assets)
        print(f"{'page':45} {'first ms':>9} {'p50 ms':>8} {'p95 ms':>8} {'page KB gz':>11} {'with assets KB gz':>18}")
        for page in PAGES:
            first = 1000 * times[page][0]  # the first view after a state update builds the page's data
            ms = sorted(1000 * x for x in times[page])
            page_gz = len(gzip.compress(bodies[page])) / 1024
            print(
                f"{page:45} {first:9.1f} {statistics.median(ms):8.1f} {ms[int(0.95 * (len(ms) - 1))]:8.1f} "
                f"{page_gz:11.1f} {page_gz + asset_bytes / 1024:18.1f}"
            )


if __name__ == "__main__":
    main()
