"""Decode + ingest one node state snapshot (`.rmp`), stage by stage, with peak memory.

    .venv/bin/python benchmarks/snapshot.py [--scale bench|mainnet|both] [--keep DIR] [--file RMP]

- bench: the simulator at bench scale (300k wallets, 200k positions) written as a node snapshot.
- mainnet: a synthetic file shaped like mainnet's (sources.md, real-shapes.md, perf-anchors.md): 1.5M user
  states on the main dex, 60k users with 180k positions, leverage-only entries for one user in five, 9 HIP-3
  dexes (105k user states, 64k positions, one settling in USDT0), 1.8M `ust` account modes, spot balances of
  1.2M users, 9,376 vaults, `blp`, `c_staking`, and 3M order-book entries under `perp_dexs` after `locus`.
  Generated, never committed.

Each file is measured in a fresh process (so that peak RSS is the reader's own): read (streaming decode),
build (margin math, wallets), then ingest (validate, tracking, metrics, DuckDB) twice: the first state
update (every position new) and a second one at the next height (every position continuing), which is
what a running node source does every ~15 minutes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack
import numpy as np

BLOCK = 10_000


# ------------------------------------------------------------------ generating files


def write_bench(folder: Path) -> tuple[Path, Path]:
    from hyperscope.sources.hyperliquid.nodefiles import market_record_path, write_json, write_snapshot
    from hyperscope.sources.simulator import nodeview
    from hyperscope.sources.simulator.engine import Simulator, preset

    sim = Simulator(preset("bench"), genesis_ms=1_767_225_600_000)
    sim.step(sim.time_ms + 900_000)
    height = sim.config.start_height + BLOCK
    path = write_snapshot(folder, nodeview.snapshot(sim, height))
    record = market_record_path(folder, height)
    write_json(record, nodeview.market_record(sim))
    return path, record


def _addresses(rng: np.random.Generator, n: int) -> list[str]:
    raw = rng.integers(0, 256, size=(n, 20), dtype=np.uint8)
    return ["0x" + row.tobytes().hex() for row in raw]


def _clearinghouse(
    packer: msgpack.Packer,
    out,
    rng,
    index: int,
    coins: list[str],
    users: list[str],
    n_with_positions: int,
    pairs_per_coin: int,
    collateral: int = 0,
) -> None:
    """One `cls[i]`, streamed: meta, oracle, then user_states with balanced positions per coin, and the
    leverage-only entries real files hold (leverage set on a coin not held: no `s`, no `e`) for one user in
    five, keys in the order public notes show (`meta` is not first)."""
    n_coins = len(coins)
    sz_decimals = rng.integers(0, 6, n_coins)
    price = np.exp(rng.uniform(np.log(0.01), np.log(90_000), n_coins))
    meta = {
        "universe": [
            {"name": c, "szDecimals": int(d), "marginTableId": 56 if j < 2 and index == 0 else 20}
            for j, (c, d) in enumerate(zip(coins, sz_decimals, strict=True))
        ],
        "marginTableIdToMarginTable": [
            [
                56,
                {
                    "margin_tiers": [
                        {"lower_bound": 0, "max_leverage": 40, "maintenance_deduction": 0},
                        {"lower_bound": 150_000_000_000_000, "max_leverage": 20, "maintenance_deduction": 0},
                    ]
                },
            ]
        ],
        "collateralToken": collateral,
    }
    holders = np.arange(n_with_positions)
    base = 0 if index == 0 else 100_000 + 10_000 * index
    positions: dict[int, list] = {}
    for j in range(n_coins):
        picked = rng.choice(holders, size=2 * pairs_per_coin, replace=False)
        lots = rng.lognormal(8, 2, pairs_per_coin).astype(np.int64) + 1
        entry = price[j] * np.exp(rng.normal(0, 0.05, 2 * pairs_per_coin))
        for k, user in enumerate(picked.tolist()):
            size = int(lots[k % pairs_per_coin]) * (1 if k < pairs_per_coin else -1)
            cost = max(1, int(abs(size) / 10 ** sz_decimals[j] * entry[k] * 1e6))
            if index == 0:
                lev: dict = {"C": int(rng.integers(1, 20))}
            else:  # isolated, with a third of the notional as margin
                lev = {"I": {"l": 5, "u": (-cost if size > 0 else cost) + cost // 3}}
            position = {"s": size, "e": cost, "l": lev, "f": {"a": 0, "o": 0, "c": 0}}
            positions.setdefault(user, []).append([base + j, position])
    packer_bytes = packer.pack
    out.write(packer.pack_map_header(4))
    out.write(packer_bytes("user_states") + packer.pack_map_header(2))
    out.write(packer_bytes("users_with_positions") + packer_bytes([users[u] for u in sorted(positions)]))
    out.write(packer_bytes("user_to_state") + packer.pack_array_header(len(users)))
    cash = (rng.lognormal(6, 3, len(users)) * 1e6).astype(np.int64).tolist()
    preference = {"l": {"C": 15}, "M": 56, "f": {"a": -217821}}  # a real leverage-only entry (real-shapes.md)
    for i, (address, u) in enumerate(zip(users, cash, strict=True)):
        state = {"u": u, "S": {"s": u, "r": u}}
        held = positions.get(i)
        if held is not None:
            state["u"] = u + 10**13
            state["p"] = {"p": held + [[base + (i % n_coins), preference]] if i % 3 == 0 else held}
        elif i % 5 == 0:
            state["p"] = {"p": [[base + (i % n_coins), preference]]}
        out.write(packer_bytes([address, state]))
    out.write(packer_bytes("meta") + packer_bytes(meta))
    oracle = {"pxs": [[{"px": max(1, int(p * 10 ** (6 - d)))}] for p, d in zip(price, sz_decimals, strict=True)]}
    out.write(packer_bytes("oracle") + packer_bytes(oracle))
    out.write(packer_bytes("total_net_deposit") + packer_bytes(0))


def write_mainnet(folder: Path, seed: int = 3) -> Path:
    """The shapes real files show (real-shapes.md): `locus` before the order books, which sit under
    `perp_dexs` and `spot_books` after it; 1.8M `ust` account modes; `blp` and `c_staking`; leverage-only
    position entries; a HIP-3 dex settling in another collateral token than USDC."""
    rng = np.random.default_rng(seed)
    height = 941_000_000
    path = folder / "periodic_abci_states" / "20260401" / f"{height}.rmp"
    path.parent.mkdir(parents=True, exist_ok=True)
    packer = msgpack.Packer(use_bin_type=True, autoreset=True)
    pk = packer.pack
    users = _addresses(rng, 1_500_000)
    others = _addresses(rng, 323_730)  # accounts with a mode but no perp state
    book_order = pk(
        {
            "p": 600_000_000,
            "r": 1,
            "O": 123_456_789_012,
            "u": users[0],
            "t": 1_775_000_000_000,
            "o": 1,
            "c": {"t": 0, "S": 1, "r": False, "s": 1, "l": 1},
        }
    )
    with path.open("wb") as out:
        out.write(packer.pack_map_header(1) + pk("exchange") + packer.pack_map_header(3))
        out.write(pk("locus") + packer.pack_map_header(7))
        out.write(pk("ctx") + pk({"height": height, "time": "2026-04-01T12:00:00.000000000"}))
        out.write(pk("ust") + packer.pack_array_header(len(users) + len(others)))
        for k, address in enumerate(users + others):
            out.write(pk([address, "udp"[k % 3]]))
        out.write(pk("cls") + packer.pack_array_header(10))
        main_coins = ["BTC", "ETH"] + [f"C{j}" for j in range(178)]
        _clearinghouse(packer, out, rng, 0, main_coins, users, 60_000, 500)  # 180k positions
        for d in range(1, 10):  # 105k user states and 64k positions over 9 HIP-3 dexes (perf-anchors.md)
            coins = [f"dex{d}:A{j}" for j in range(10)]
            _clearinghouse(packer, out, rng, d, coins, users[:11_700], 6_000, 355, collateral=268 if d == 9 else 0)
        out.write(pk("blp") + pk({"pools": [[0, {"total_supplied": 10**12}]], "user_states": []}))
        out.write(pk("scl") + packer.pack_map_header(1) + pk("user_states"))
        spot_users = users[300_000:] + _addresses(rng, 0)
        spot_users = spot_users[:1_200_000]
        out.write(packer.pack_array_header(len(spot_users)))
        totals = (rng.lognormal(10, 3, len(spot_users)) * 1e8).astype(np.int64).tolist()
        for address, total in zip(spot_users, totals, strict=True):
            out.write(pk([address, {"b": [[0, {"t": total, "h": 0}], [150, {"t": total // 7, "h": 0}]]}]))
        out.write(pk("c_staking") + packer.pack_map_header(3) + pk("delegations") + packer.pack_array_header(50_000))
        for k in range(50_000):
            out.write(pk([users[k * 7], [["0x" + "ab" * 20, 10**8 + k]]]))
        out.write(pk("user_states") + pk([]) + pk("pending_withdrawals") + pk([]))
        out.write(pk("vlt") + packer.pack_array_header(9_376))
        for v in range(9_376):
            followers = [[users[(v * 37 + k) % len(users)], {"o": {"f": 0.1, "b": 0}}] for k in range(5)]
            out.write(pk([users[-1 - v], {"user_states": followers}]))
        # the order books: 3M entries the reader has to pass over, after locus as in real files
        out.write(pk("perp_dexs") + packer.pack_array_header(1) + packer.pack_map_header(1) + pk("books"))
        out.write(packer.pack_array_header(1) + packer.pack_map_header(1) + pk("book_orders"))
        out.write(packer.pack_array_header(3_000_000))
        for _ in range(3_000):
            out.write(book_order * 1_000)
        out.write(pk("spot_books") + pk([[k, {"bids": [], "asks": []}] for k in range(307)]))
    return path


# ------------------------------------------------------------------ measuring


def measure(path: Path, record: Path | None) -> None:
    import orjson

    from hyperscope.domain.state import validate
    from hyperscope.ingest import Ingestor
    from hyperscope.sources.hyperliquid.build import WalletBook, build_update
    from hyperscope.sources.hyperliquid.contexts import MarketContexts, from_recording
    from hyperscope.sources.hyperliquid.events import Flows
    from hyperscope.sources.hyperliquid.snapshot import read_snapshot
    from hyperscope.store import open_store

    contexts = from_recording(orjson.loads(record.read_bytes())) if record else MarketContexts()
    book = WalletBook()
    helper = 0
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "bench.duckdb", memory_mib=1024)
        ingestor = Ingestor(store)
        for k in range(2):
            t = time.perf_counter()
            snapshot = read_snapshot(path)
            snapshot.height += k * BLOCK
            snapshot.time_ms += k * 900_000
            read_s = time.perf_counter() - t
            helper = max(helper, getattr(snapshot, "helper_peak_bytes", 0))  # (builds before 2026-12-04: none)
            t = time.perf_counter()
            update = build_update(snapshot, contexts, book, fills=None, flows=Flows())
            build_s = time.perf_counter() - t
            if k == 0:
                validate(update)  # fail loudly on a bad generator, outside the timings
            result = ingestor.ingest(update)
            stages = " ".join(f"{s}={v:.2f}" for s, v in result.seconds.items())
            total = read_s + build_s + result.total_seconds
            label = "first update (all positions new)" if k == 0 else "next update (positions continue)"
            print(
                f"  {label}: read {read_s:.2f}s | build {build_s:.2f}s | ingest {result.total_seconds:.2f}s "
                f"({stages}) | total {total:.2f}s",
                flush=True,
            )
            if k == 0:
                print(
                    f"  {update.positions.num_rows:,} positions, {update.wallets.num_rows:,} wallets, "
                    f"{update.markets.num_rows} coins",
                    flush=True,
                )
        store.close()
    # VmHWM, not ru_maxrss: a spawned helper's ru_maxrss counts this process's memory between fork and exec
    own = peak_bytes() / 2**30
    print(
        f"  peak RSS: this process (read, build, ingest, DuckDB) {own:.2f} GiB"
        + (
            f", helper process (ust, scl) {helper / 2**30:.2f} GiB, together {own + helper / 2**30:.2f} GiB"
            if helper
            else ""
        )
    )


def peak_bytes() -> int:
    """This process's peak resident memory (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run(label: str, path: Path, record: Path | None) -> None:
    print(f"{label}: {path.stat().st_size / 2**20:,.0f} MiB file", flush=True)
    command = [sys.executable, __file__, "--measure", str(path)] + (["--record", str(record)] if record else [])
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", choices=["bench", "mainnet", "both"], default="both")
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    parser.add_argument("--file", type=Path, help="measure this mainnet-shaped file (from --keep), not a new one")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--record", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, args.record)
        return
    if args.file:
        run("mainnet-shaped", args.file, None)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        if args.scale in ("bench", "both"):
            t = time.perf_counter()
            path, record = write_bench(folder / "bench")
            print(f"(bench file written in {time.perf_counter() - t:.0f}s)")
            run("bench", path, record)
        if args.scale in ("mainnet", "both"):
            t = time.perf_counter()
            path = write_mainnet(folder / "mainnet")
            print(f"(mainnet-shaped file written in {time.perf_counter() - t:.0f}s)")
            run("mainnet-shaped", path, None)


if __name__ == "__main__":
    main()
