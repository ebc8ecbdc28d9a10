"""How the simulated market compares with upstream's published structure, day by day.

Runs the simulator (no store) and prints, every 24 updates: open interest, active perp equity and their ratio
(upstream's example: 0.39), wallets holding positions with negative equity (must be 0), wallet leverage
(open value / perp equity) p50/p99/max, and the share of open value within 75% of its liquidation price.

    .venv/bin/python benchmarks/realism.py [--scale small] [--updates 192] [--seed 7]
"""

from __future__ import annotations

import argparse

import numpy as np

from hyperscope.domain.formulas import liquidation_progress
from hyperscope.sources.simulator import Simulator, preset

GENESIS_MS = 1_767_225_600_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="small")
    parser.add_argument("--updates", type=int, default=192)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sim = Simulator(preset(args.scale, seed=args.seed), genesis_ms=GENESIS_MS)
    for i in range(1, args.updates + 1):
        update = sim.step(sim.time_ms + 900_000)
        if i % 24 and i != args.updates:
            continue
        account = sim._account()
        wallet, notional = account["w"], account["notional"]
        per_wallet = np.bincount(wallet, weights=notional, minlength=sim.config.wallets)
        holds = per_wallet > 0
        equity = account["av"]
        leverage = per_wallet[holds & (equity > 0)] / equity[holds & (equity > 0)]
        liq = update.positions.column("liquidation_px").to_numpy(zero_copy_only=False).astype(float)
        progress = liquidation_progress(np.sign(account["size"]), sim.pos.entry, account["mark"], liq)
        oi = notional.sum()
        print(f"update {i:4d}: OI {oi / 1e6:8.1f}M  active equity {equity[holds].sum() / 1e6:7.1f}M  "
              f"equity/OI {equity[holds].sum() / oi:.3f}  negative-equity holders {(holds & (equity < 0)).sum()}  "
              f"wallet leverage p50 {np.median(leverage):.2f} p99 {np.percentile(leverage, 99):.1f} "
              f"max {leverage.max():.0f}  close to liquidation {100 * notional[progress >= 75].sum() / oi:.2f}% "
              f"({(progress >= 75).sum()} positions)")  # fmt: skip


if __name__ == "__main__":
    main()
