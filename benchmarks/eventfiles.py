"""A node's fill files at mainnet scale through the node source's reader: time and peak memory.

    .venv/bin/python benchmarks/eventfiles.py [--gib 2] [--keep DIR]

Writes `--gib` GiB of `node_fills_by_block/hourly/{date}/{H}` files shaped like the real line in
tests/data/hyperliquid/public (a block of ~10 fills every ~70 ms, ~250 MB an hour as on mainnet), then,
in a fresh process, does what `--source node` does on its first snapshot after a long stop: every block before
the snapshot's window read for open times (a batch at a time), then the last window's fills as one table.
Prints the files' size, the time of each pass, the fills read, and the process's peak RSS, which must not grow
with the files. Generated, never committed.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

FILLS_PER_BLOCK = 10
BLOCKS_PER_HOUR = 50_000  # ~250 MB an hour at 10 fills a block, a block every ~70 ms (mainnet)
COINS = ["BTC", "ETH", "SOL", "HYPE", "XRP", "DOGE", "SUI", "LINK", "AVAX", "ZEC"]


def write(root: Path, gib: float) -> tuple[int, int]:
    """Fill files of about `gib` GiB under `root`; returns (bytes written, the last block number)."""
    sample = orjson.loads(
        (Path(__file__).parents[1] / "tests/data/hyperliquid/public/node_fills_by_block.real.ndjson").read_bytes()
    )
    user, fill = sample["events"][0]
    target, written, block = int(gib * 2**30), 0, 1_000_000_000
    hour = 0
    while written < target:
        path = root / "node_fills_by_block" / "hourly" / f"202603{1 + hour // 24:02d}" / str(hour % 24)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            for _ in range(BLOCKS_PER_HOUR):
                events = []
                for k in range(FILLS_PER_BLOCK):
                    address = f"0x{(block * 7919 + k) % 50_000:040x}"  # 50,000 active wallets
                    coin = COINS[(block + k) % len(COINS)]
                    events.append(
                        [
                            address,
                            {
                                **fill,
                                "coin": coin,
                                "tid": block * 1000 + k,
                                "startPosition": "0.0" if k % 3 else "-1.5",
                            },
                        ]
                    )
                line = (
                    orjson.dumps(
                        {
                            "local_time": sample["local_time"],
                            "block_time": sample["block_time"],
                            "block_number": block,
                            "events": events,
                        }
                    )
                    + b"\n"
                )
                f.write(line)
                written += len(line)
                block += 1
                if written >= target:
                    break
        hour += 1
    return written, block - 1


MEASURE = """
import resource, sys, time
from pathlib import Path
from hyperscope.sources.hyperliquid.build import WalletBook
from hyperscope.sources.hyperliquid.events import BlockStream, fills_table
root, last = Path(sys.argv[1]), int(sys.argv[2])
coins = {"BTC", "ETH", "SOL", "HYPE", "XRP", "DOGE", "SUI", "LINK", "AVAX", "ZEC"}
stream, book = BlockStream(root / "node_fills_by_block", complete=True), WalletBook()
t0 = time.perf_counter()
older = 0
for batch in stream.batches(last - 10_000):
    table = fills_table(batch, coins)
    older += table.num_rows
    book.learn_opens(table)
t1 = time.perf_counter()
window = [fills_table(batch, coins) for batch in stream.batches(last)]
t2 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{older} {sum(t.num_rows for t in window)} {t1 - t0:.1f} {t2 - t1:.1f} {rss:.0f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=2.0, help="GiB of fill files to generate (default 2)")
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hs-fills-") as tmp:
        root = args.keep or Path(tmp)
        t0 = time.perf_counter()
        size, last = write(root, args.gib)
        print(
            f"wrote {size / 2**30:.2f} GiB of fill files ({last - 1_000_000_000 + 1:,} blocks) in "
            f"{time.perf_counter() - t0:.0f} s"
        )
        done = subprocess.run(
            [sys.executable, "-c", MEASURE, str(root), str(last)], capture_output=True, text=True, check=True
        )
        older, window, t_older, t_window, rss = done.stdout.split()
        print(
            f"older blocks: {int(older):,} perp fills read for open times in {t_older} s "
            f"({size / 2**20 / max(float(t_older), 1e-9):,.0f} MiB/s)"
        )
        print(f"the snapshot's window (10,000 blocks): {int(window):,} fills in {t_window} s")
        print(f"peak RSS of the reading process: {rss} MiB (files: {size / 2**20:,.0f} MiB)")
        own = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"(peak RSS of any child, for reference: {own:.0f} MiB)")


if __name__ == "__main__":
    main()
