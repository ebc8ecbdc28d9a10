"""Soak: `hyperscope run` for N minutes under a steady request mix; prints a line a minute.

    .venv/bin/python benchmarks/soak.py [--minutes 30] [--scale small] [--rps 20] [--data-dir DIR]

Starts `hyperscope run` on a fresh data folder (or the one given), waits for its key, then sends `--rps`
requests a second round-robin over every route (series, snapshots, cohorts, junk query strings that
must not grow the cache, and open-positions CSV exports followed through their redirect). Every minute it
prints the server's RSS, the store's size on disk, the export folder's size, requests and errors in that
minute, and /health. At the end: SIGTERM, and the exit code.
"""

from __future__ import annotations

import argparse
import itertools
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROUTES = [
    "/api/external/positions/coins",
    "/api/external/position-metrics/general?start={day}",
    "/api/external/metrics/perp-volume?start={day}",
    "/api/external/position-metrics/coin/BTC?start={day}&limit=100",
    "/api/external/position-metrics/coin/ETH/segment/4?start={day}&positionRecencyTimeframe=24h",
    "/api/external/position-metrics/coin/SOL/position-size-bucket/3?start={day}",
    "/api/external/segments",
    "/api/external/segments/9/bias-history",
    "/api/external/positions/heatmap?openedWithin=7d",
    "/api/external/12/assets/liquidation-risk?limit=50",
    "/api/external/positions/coins?junk={n}",
    "/api/external/positions/open/coin/BTC",
]


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20 if path.exists() else 0.0


def cache_entries(http: httpx.Client) -> str:
    """Responses the server's cache holds, from its Prometheus metrics."""
    found = re.search(r"^hyperscope_response_cache_entries (\S+)$", http.get("/metrics").text, re.M)
    return f"{float(found.group(1)):.0f}" if found else "?"


def start(args: argparse.Namespace, data: Path) -> tuple[subprocess.Popen[str], str, str]:
    port = args.port
    cmd = [
        sys.executable,
        "-m",
        "hyperscope.cli",
        "run",
        "--scale",
        args.scale,
        "--port",
        str(port),
        "--data-dir",
        str(data),
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={"HYPERSCOPE_LOG_LEVEL": "WARNING", "PATH": "/usr/bin:/bin"},
    )
    text = ""
    while "Press Ctrl-C" not in text:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            sys.exit(f"hyperscope run ended before it was ready:\n{text}")
        text += line
    # a key of its own, made while the server runs, with room for the request rate
    create = ["keys", "create", "--name", "soak", "--rate-limit", "1000000", "--data-dir", str(data)]
    made = subprocess.run([sys.executable, "-m", "hyperscope.cli", *create], capture_output=True, text=True)
    key = re.search(r"^(hs_\S+)$", made.stdout, re.M)
    if key is None:
        sys.exit(f"keys create failed while the server runs: {made.stderr}")
    return proc, f"http://127.0.0.1:{port}", key.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--scale", default="small")
    parser.add_argument("--rps", type=float, default=20)
    parser.add_argument("--port", type=int, default=8190)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    data = args.data_dir or Path(tempfile.mkdtemp(prefix="hyperscope-soak-")) / "data"
    started = time.time()
    proc, base, key = start(args, data)
    print(
        f"ready after {time.time() - started:.0f} s ({args.scale} scale, data in {data}); {args.rps:g} req/s",
        flush=True,
    )
    server = psutil.Process(proc.pid)
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86_400))
    counter = itertools.count()
    header = (
        f"{'min':>4} {'rss MB':>7} {'store MB':>9} {'exports MB':>10} {'requests':>8} {'errors':>6} "
        f"{'5xx':>4} {'health':>14} {'height':>10} {'lag s':>6} {'cache':>6}"
    )
    print(header, flush=True)
    totals = {"requests": 0, "errors": 0, "5xx": 0}
    peak = 0.0
    try:
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30, follow_redirects=True
        ) as http:
            minute = 0
            deadline = started + 60
            window = {"requests": 0, "errors": 0, "5xx": 0}
            end = time.time() + args.minutes * 60
            next_at = time.time()
            while time.time() < end:
                n = next(counter)
                path = ROUTES[n % len(ROUTES)].format(day=day, n=n)
                try:
                    response = http.get(path)
                    ok = response.status_code < 400
                    if response.status_code >= 500:
                        window["5xx"] += 1
                    if ok and path.endswith("/BTC"):
                        float(response.text.splitlines()[1].split(",")[6])  # a CSV value parses as a number
                except (httpx.HTTPError, ValueError, IndexError):
                    ok = False
                window["requests"] += 1
                window["errors"] += 0 if ok else 1
                next_at += 1 / args.rps
                time.sleep(max(0.0, next_at - time.time()))
                if time.time() >= deadline:
                    minute += 1
                    deadline += 60
                    rss = server.memory_info().rss / 2**20
                    peak = max(peak, rss)
                    health = http.get("/health").json()
                    print(
                        f"{minute:>4} {rss:>7.0f} {size_mb(data) - size_mb(data / 'exports'):>9.1f} "
                        f"{size_mb(data / 'exports'):>10.1f} {window['requests']:>8} {window['errors']:>6} "
                        f"{window['5xx']:>4} {health['status']:>14} {health['height']:>10} "
                        f"{health['lagSeconds']:>6.1f} {cache_entries(http):>6}",
                        flush=True,
                    )
                    for k in totals:
                        totals[k] += window[k]
                    window = {"requests": 0, "errors": 0, "5xx": 0}
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    print(
        f"total: {totals['requests']} requests, {totals['errors']} errors, {totals['5xx']} 5xx; "
        f"peak RSS {peak:.0f} MB; store {size_mb(data):.1f} MB; exit code after SIGTERM {code}"
    )
    if args.data_dir is None:
        shutil.rmtree(data.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
