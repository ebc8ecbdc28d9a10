"""A build against the working tree, interleaved: ingest (DuckDB and PostgreSQL), the API, historic positions and
(given a file) the node snapshot read, with one table of medians and per-round ratios.

    .venv/bin/python benchmarks/compare.py REF [--rounds 3] [--scale bench] [--updates 6]
        [--what ingest,api,positions,snapshot] [--stores duckdb,postgresql] [--snapshot-file FILE]
        [--api-seconds 8] [--connections 64]

REF (a commit, tag or branch) is checked out in a git worktree under the temp folder; each measurement runs in
a fresh process of this venv with that tree's `src/` first on the path, so both builds use the same
dependencies. Rounds alternate which build goes first (a machine that drifts or warms up favours neither).
Ratios are working tree / REF: below 1 is faster for times, above 1 is more for requests per second.

- ingest: seconds per steady state update (the median of updates 2..N) at `--scale`, each build its own store;
- api: `hyperscope serve` of each build over its DuckDB store from the ingest run, wrk `--connections` for
  `--api-seconds` on /positions/coins: requests/s and p99;
- positions: /positions by coin, ordered by PnL, one client, 100 requests: p99 (a store of `--updates`
  updates: a smoke test of the query path, not the 30-day measurement of benchmarks/positions.py);
- snapshot: seconds to read `--snapshot-file` (a node's abci_state.rmp, benchmarks/snapshot.py --keep makes one).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests.pgserver import PostgresServer  # noqa: E402

from api import wrk  # noqa: E402

INGEST_PROBE = """
import json, sys, time, statistics
from hyperscope.ingest import Ingestor
from hyperscope.sources.simulator import Simulator, preset
from hyperscope.store import open_store
target, scale, updates = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = open_store(target)
ingestor = Ingestor(store)
t0 = 1_767_225_600_000
sim = Simulator(preset(scale), genesis_ms=t0)
times = []
for k in range(1, updates + 1):
    update = sim.step(t0 + k * 900_000)
    started = time.perf_counter()
    ingestor.ingest(update)
    times.append(time.perf_counter() - started)
    getattr(ingestor, "between_updates", lambda: None)()  # upkeep in the idle time (builds that have it)
store.close()
print(json.dumps({"first": times[0], "steady": statistics.median(times[1:])}))
"""
SNAPSHOT_PROBE = """
import json, sys, time
from hyperscope.sources.hyperliquid.snapshot import read_snapshot
started = time.perf_counter()
read_snapshot(sys.argv[1])
print(json.dumps({"read": time.perf_counter() - started}))
"""
MAIN = "from hyperscope.cli import main; main()"


def python(tree: Path, code: str, *args: str, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run `code` in a new process with `tree`'s sources first on the path; its last output line is JSON."""
    full = {**os.environ, **(env or {}), "PYTHONPATH": str(tree / "src")}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=full, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def worktree(ref: str) -> Path:
    sha = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.gettempdir()) / f"hyperscope-compare-{sha.strip()[:12]}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha.strip()], cwd=ROOT, check=True)
    return path


def served(tree: Path, data_dir: Path, port: int) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(tree / "src"),
        "HYPERSCOPE_DATA_DIR": str(data_dir),
        "HYPERSCOPE_LOG_LEVEL": "WARNING",
        "HYPERSCOPE_PORT": str(port),
    }
    made = subprocess.run(
        [sys.executable, "-c", MAIN, "keys", "create", "--rate-limit", "1000000"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = made.stdout.strip().splitlines()[-1]
    server = subprocess.Popen(
        [sys.executable, "-c", MAIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code in (200, 503):
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    return server, key


def api_round(tree: Path, data_dir: Path, args: argparse.Namespace) -> dict[str, float]:
    server, key = served(tree, data_dir, args.port)
    base = f"http://127.0.0.1:{args.port}"
    try:
        out: dict[str, float] = {}
        if "api" in args.what:
            wrk(base, "/api/external/positions/coins", key, 2, args.connections)  # warm-up
            rps, _, p99 = wrk(base, "/api/external/positions/coins", key, args.api_seconds, args.connections)
            out |= {"api req/s": rps, "api p99 ms": p99}
        if "positions" in args.what:
            latencies = []
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
                # the probe's store starts at 2026-01-01 (INGEST_PROBE's t0)
                path = (
                    "/api/external/positions?coin=BTC&orderBy=pnl&order=desc&limit=50&start=2026-01-01&end=2026-01-02"
                )
                for _ in range(100):
                    started = time.perf_counter()
                    answer = http.get(path)
                    if answer.status_code != 200:
                        raise SystemExit(f"{tree}: {path} -> {answer.status_code} {answer.text[:300]}")
                    latencies.append(1000 * (time.perf_counter() - started))
            out["positions p99 ms"] = sorted(latencies)[98]
        return out
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", default="bench")
    ap.add_argument("--updates", type=int, default=6)
    ap.add_argument("--what", default="ingest,api,positions,snapshot")
    ap.add_argument("--stores", default="duckdb,postgresql")
    ap.add_argument("--snapshot-file")
    ap.add_argument("--api-seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--port", type=int, default=8913)
    args = ap.parse_args()
    args.what = set(args.what.split(","))
    trees = {"ref": worktree(args.ref), "work": ROOT}
    figures: dict[str, dict[str, list[float]]] = {"ref": {}, "work": {}}
    server = PostgresServer().start() if "postgresql" in args.stores and "ingest" in args.what else None
    try:
        for r in range(args.rounds):
            order = ["ref", "work"] if r % 2 == 0 else ["work", "ref"]
            for name in order:
                tree, got = trees[name], figures[name]
                with tempfile.TemporaryDirectory() as tmp:
                    data = Path(tmp)
                    for store in args.stores.split(","):
                        if "ingest" not in args.what and not args.what & {"api", "positions"}:
                            break
                        if store == "duckdb":
                            target = str(data / "hyperscope.duckdb")
                        elif server is not None:
                            target = server.create_database(f"{name}{r}")
                        else:
                            continue
                        result = python(tree, INGEST_PROBE, target, args.scale, str(args.updates))
                        got.setdefault(f"ingest {store} steady s", []).append(result["steady"])
                        got.setdefault(f"ingest {store} first s", []).append(result["first"])
                    if args.what & {"api", "positions"}:
                        for k, v in api_round(tree, data, args).items():
                            got.setdefault(k, []).append(v)
                if "snapshot" in args.what and args.snapshot_file:
                    got.setdefault("snapshot read s", []).append(
                        python(tree, SNAPSHOT_PROBE, args.snapshot_file)["read"]
                    )
                print(f"round {r + 1} {name}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in got.items()), flush=True)
    finally:
        if server is not None:
            server.stop()
    print(f"\n{args.ref} (ref) against the working tree, {args.rounds} interleaved rounds, scale {args.scale}")
    print(f"{'figure':28} {'ref median':>11} {'work median':>12} {'ratio':>7}  per-round ratios")
    for key in figures["work"]:
        ref, work = figures["ref"].get(key, []), figures["work"][key]
        if not ref:
            continue
        ratios = [w / f for w, f in zip(work, ref, strict=False) if f]
        ratio = statistics.median(work) / statistics.median(ref)
        rounds = " ".join(f"{x:.2f}" for x in ratios)
        print(f"{key:28} {statistics.median(ref):11.3f} {statistics.median(work):12.3f} {ratio:7.2f}  {rounds}")


if __name__ == "__main__":
    main()
