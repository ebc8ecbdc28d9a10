"""How the simulated market compares with upstream's published structure.

Runs the simulator (no store) as `scripts/run` does (15-minute cadence, 26 hours by default) and prints, every
24 updates: open interest, active perp equity and their ratio (upstream's example: 0.39), wallets holding
positions with negative equity (must be 0), wallet leverage (open value / perp equity) p50/p99/max, and the
share of open value within 75% of its liquidation price. At the end, beside the seed's figures: BTC's
positions by size bucket (count and value shares, upstream's position-breakdown-by-size example), the ten
coins with the most open interest (all real listings?), and 24 h volume over open interest (seed about 1).

    .venv/bin/python benchmarks/realism.py [--scale small] [--updates 104] [--seed 7]
"""

from __future__ import annotations

import argparse

import numpy as np

from hyperscope.domain.buckets import SIZE_BUCKETS, size_bucket
from hyperscope.domain.formulas import liquidation_progress
from hyperscope.sources.simulator import Simulator, preset
from hyperscope.sources.simulator.universe import REAL_LISTINGS

GENESIS_MS = 1_767_225_600_000
# upstream's BTC position-breakdown-by-size example: per bucket, count share and value share (%)
SEED_BTC = {
    1: (55.86, 0.19),
    2: (25.28, 1.30),
    3: (6.59, 1.52),
    4: (3.72, 1.89),
    5: (2.98, 3.06),
    6: (2.67, 6.07),
    7: (1.18, 6.01),
    8: (0.71, 6.97),
    9: (0.51, 11.67),
    10: (0.50, 61.32),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="small")
    parser.add_argument("--updates", type=int, default=104)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sim = Simulator(preset(args.scale, seed=args.seed), genesis_ms=GENESIS_MS)
    update = None
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
        print(
            f"update {i:4d}: OI {oi / 1e6:8.1f}M  active equity {equity[holds].sum() / 1e6:7.1f}M  "
            f"equity/OI {equity[holds].sum() / oi:.3f}  negative-equity holders {(holds & (equity < 0)).sum()}  "
            f"wallet leverage p50 {np.median(leverage):.2f} p99 {np.percentile(leverage, 99):.1f} "
            f"max {leverage.max():.0f}  close to liquidation {100 * notional[progress >= 75].sum() / oi:.2f}% "
            f"({(progress >= 75).sum()} positions)"
        )
    assert update is not None
    account = sim._account()
    coins = np.array(sim.u.coins)
    notional, coin = account["notional"], account["c"]
    btc = coin == sim.u.coins.index("BTC")
    buckets = size_bucket(notional[btc])
    print(f"\nBTC by position size ({btc.sum():,} positions, ${notional[btc].sum() / 1e6:,.1f}M), simulated vs seed:")
    print("  bucket        count share          value share")
    for b in SIZE_BUCKETS:
        mine = buckets == b.id
        count, value = 100 * mine.mean(), 100 * notional[btc][mine].sum() / notional[btc].sum()
        seed_count, seed_value = SEED_BTC[b.id]
        print(
            f"  {b.label:<12} {count:6.2f}% vs {seed_count:5.2f}%  {value:6.2f}% vs {seed_value:5.2f}%  "
            f"(x{count / seed_count:.2f}, x{value / seed_value:.2f})"
        )
    oi = np.bincount(coin, weights=notional, minlength=sim.u.n)
    top = np.argsort(-oi)[:10]
    names = [str(coins[j]) for j in top]
    real = [n.split(":")[-1] in REAL_LISTINGS or ":" in n for n in names]
    print(f"\ntop 10 coins by open interest: {', '.join(names)} ({sum(real)} of 10 real listings)")
    volume = update.markets.column("day_ntl_vlm").to_numpy().sum()
    long_oi = notional.sum() / 2
    print(f"24 h volume / open interest: {volume / long_oi:.2f} (seed about 1)")


if __name__ == "__main__":
    main()
