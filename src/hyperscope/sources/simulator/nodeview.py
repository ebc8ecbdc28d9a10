"""The simulated market seen the way a Hyperliquid node shows it.

The simulator's state is turned into exactly what a node's files and the Info API hold: a `Snapshot` of raw
integers (sizes in lots, USD x 1e6, token wei), market data as `metaAndAssetCtxs` / `spotMetaAndAssetCtxs`
responses with decimal strings, fills, and ledger events. The simulated source builds its state updates
from this view with the same code a node source uses (`hyperliquid.build`), and `hyperscope simulate
--write-node-dir` writes this view to files; so a replay of those files serves exactly what the simulator
served.

Conventions of the view: wallet 0 (the liquidator) is also the one vault, holding its followers' money, and
each follower owns `vault_equity / vault account value` of it; the main dex's users are every wallet (cross
cash in `u`); HIP-3 dexes list the wallets with positions there (all isolated, `u` = 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from hyperscope.domain.coins import MAIN_DEX
from hyperscope.domain.state import FILLS
from hyperscope.sources.hyperliquid.events import Flows
from hyperscope.sources.hyperliquid.snapshot import (
    LEV_CROSS,
    LEV_ISOLATED,
    MODE_DEX_ABSTRACTION,
    MODE_NAMES,
    MODE_PORTFOLIO,
    MODE_UNIFIED,
    Clearinghouse,
    Snapshot,
    Tier,
)
from hyperscope.sources.simulator.engine import Simulator

HYPE_TOKEN = 150
USDT0_TOKEN, USDT0_PX = 268, 0.9995  # the last HIP-3 dex settles in USDT0, as mainnet's `cash` dex does
HYPE_PAIR = "@107"
WEI = 1e8  # spot tokens' weiDecimals in the view


def _number(value: float) -> str:
    return repr(float(value))


def dexes(sim: Simulator) -> list[str]:
    """Dex names in clearinghouse order: the main dex first, then HIP-3 dexes as the universe lists them."""
    names = [MAIN_DEX]
    for d in sim.u.dex:
        if d not in names:
            names.append(d)
    return names


def snapshot(sim: Simulator, height: int) -> Snapshot:
    u, p = sim.u, sim.pos
    nc = u.n
    addresses = sim.address.to_pylist()
    coin, wallet = p.key % nc, p.key // nc
    size = p.lots / u.scale[coin]
    iso_raw = np.where(p.iso, np.round((p.iso_margin - size * p.entry) * 1e6), 0).astype(np.int64)
    cost = np.round(np.abs(size) * p.entry * 1e6).astype(np.int64)
    iso_per_wallet = np.bincount(wallet, weights=iso_raw.astype(np.float64), minlength=sim.config.wallets)
    cross_cash = np.round(sim.cash * 1e6).astype(np.int64) - iso_per_wallet.astype(np.int64)
    houses = []
    for index, dex in enumerate(dexes(sim)):
        in_dex = np.array([d == dex for d in u.dex])
        coin_rows = np.nonzero(in_dex)[0]
        local = np.full(nc, -1, np.int64)
        local[coin_rows] = np.arange(coin_rows.size)
        held = in_dex[coin]
        if index == 0:
            users = np.arange(sim.config.wallets, dtype=np.int64)
            cash = cross_cash
        else:
            users = np.unique(wallet[held])
            cash = np.zeros(users.size, np.int64)
        account = np.searchsorted(users, wallet[held])
        max_lev = u.max_leverage[coin_rows].astype(np.int64)
        sz_decimals = u.sz_decimals[coin_rows].astype(np.int64)
        oracle = np.round(sim.oracle[coin_rows] * 10.0 ** (6 - sz_decimals)).astype(np.int64)
        houses.append(
            Clearinghouse(
                index=index,
                coins=[u.coins[j] for j in coin_rows],
                sz_decimals=sz_decimals,
                margin_table=max_lev,
                strict_isolated=np.zeros(coin_rows.size, bool),
                margin_tables={int(m): [Tier(0.0, int(m))] for m in np.unique(max_lev)},
                oracle_raw=oracle,
                user=users,
                raw_usd=cash,
                pos_account=account.astype(np.int64),
                pos_coin=local[coin[held]],
                pos_size=p.lots[held].astype(np.int64),
                pos_cost=cost[held],
                pos_lev_kind=np.where(p.iso[held], LEV_ISOLATED, LEV_CROSS).astype(np.int8),
                pos_leverage=p.lev[held].astype(np.int64),
                pos_iso_raw=iso_raw[held],
                pos_funding=np.round(-p.funding[held] * 1e6).astype(np.int64),
                collateral_token=_collateral(sim, dex),
            )
        )
    spot_usdc = np.round(sim.spot_usdc * WEI).astype(np.int64)
    spot_hype = np.round(sim.spot_hype * WEI).astype(np.int64)
    holders = np.concatenate([np.nonzero(spot_usdc)[0], np.nonzero(spot_hype)[0]])
    tokens = np.concatenate(
        [np.zeros(np.count_nonzero(spot_usdc), np.int64), np.full(np.count_nonzero(spot_hype), HYPE_TOKEN, np.int64)]
    )
    totals = np.concatenate([spot_usdc[spot_usdc != 0], spot_hype[spot_hype != 0]])
    order = np.argsort(holders, kind="stable")
    # account modes (locus.ust): one wallet in five, unified, dex abstraction and portfolio margin in turn
    mode_user = np.arange(0, sim.config.wallets, 5, dtype=np.int64)
    mode = np.array([MODE_UNIFIED, MODE_DEX_ABSTRACTION, MODE_PORTFOLIO], np.int8)[np.arange(mode_user.size) % 3]
    vault_value = vault_account_value(sim)
    followers = np.nonzero(sim.vault_equity > 0)[0] if vault_value > 0 else np.zeros(0, np.int64)
    fraction = np.minimum(sim.vault_equity[followers] / vault_value, 1.0) if followers.size else np.zeros(0)
    return Snapshot(
        height=height,
        time_ms=sim.time_ms,
        addresses=addresses,
        clearinghouses=houses,
        spot_user=holders[order],
        spot_token=tokens[order],
        spot_total=totals[order],
        vault=np.zeros(followers.size, np.int64),
        vault_user=followers.astype(np.int64),
        vault_fraction=fraction,
        mode_user=mode_user,
        mode=mode,
        account_modes={MODE_NAMES[c]: int((mode == c).sum()) for c in np.unique(mode)},
    )


def _collateral(sim: Simulator, dex: str) -> int:
    names = dexes(sim)
    return USDT0_TOKEN if len(names) > 2 and dex == names[-1] else 0


def vault_account_value(sim: Simulator) -> float:
    p, u = sim.pos, sim.u
    mine = p.key // u.n == 0
    c = p.key[mine] % u.n
    return float(sim.cash[0] + np.sum(p.lots[mine] / u.scale[c] * sim.mark[c]))


def market_record(sim: Simulator) -> dict[str, Any]:
    """What `perpDexs`, `metaAndAssetCtxs` (per dex) and `spotMetaAndAssetCtxs` would answer now."""
    u = sim.u
    day_volume = np.sum([v for _, v in sim.volume_ring], axis=0)
    long_lots = np.zeros(u.n)
    c = sim.pos.key % u.n
    np.add.at(long_lots, c[sim.pos.lots > 0], sim.pos.lots[sim.pos.lots > 0].astype(np.float64))
    open_interest = long_lots / u.scale
    per_dex = []
    for dex in dexes(sim):
        rows = [j for j in range(u.n) if u.dex[j] == dex]
        universe = [
            {
                "name": u.coins[j],
                "szDecimals": int(u.sz_decimals[j]),
                "maxLeverage": int(u.max_leverage[j]),
                "marginTableId": int(u.max_leverage[j]),
            }
            for j in rows
        ]
        ctxs = [
            {
                "dayNtlVlm": _number(day_volume[j]),
                "funding": _number(sim.funding_rate[j]),
                "impactPxs": [_number(sim.mid[j] * 0.9999), _number(sim.mid[j] * 1.0001)],
                "markPx": _number(sim.mark[j]),
                "midPx": _number(sim.mid[j]),
                "openInterest": _number(open_interest[j]),
                "oraclePx": _number(sim.oracle[j]),
                "premium": _number(sim.premium[j]),
                "prevDayPx": _number(sim.oracle[j]),
            }
            for j in rows
        ]
        meta = {"universe": universe, "marginTables": [], "collateralToken": _collateral(sim, dex)}
        per_dex.append(["" if dex == MAIN_DEX else dex, [meta, ctxs]])
    hype_px = sim.mid[sim._hype]
    spot = [
        {
            "tokens": [
                {"name": "USDC", "index": 0, "szDecimals": 8, "weiDecimals": 8},
                {"name": "HYPE", "index": HYPE_TOKEN, "szDecimals": 2, "weiDecimals": 8},
                {"name": "USDT0", "index": USDT0_TOKEN, "szDecimals": 2, "weiDecimals": 8},
            ],
            "universe": [
                {"name": HYPE_PAIR, "tokens": [HYPE_TOKEN, 0], "index": 107, "isCanonical": False},
                {"name": "@166", "tokens": [USDT0_TOKEN, 0], "index": 166, "isCanonical": False},
            ],
        },
        [
            {
                "coin": HYPE_PAIR,
                "markPx": _number(hype_px),
                "midPx": _number(hype_px),
                "prevDayPx": _number(hype_px),
                "dayNtlVlm": "0.0",
                "circulatingSupply": "0.0",
                "totalSupply": "0.0",
            },
            {
                "coin": "@166",
                "markPx": _number(USDT0_PX),
                "midPx": _number(USDT0_PX),
                "prevDayPx": _number(USDT0_PX),
                "dayNtlVlm": "0.0",
                "circulatingSupply": "0.0",
                "totalSupply": "0.0",
            },
        ],
    ]
    perp_dexs = [None] + [
        {"name": d, "fullName": d, "deployer": "0x" + "0" * 40, "oracleUpdater": None} for d in dexes(sim)[1:]
    ]
    return {"origin": "simulator", "perpDexs": perp_dexs, "metaAndAssetCtxs": per_dex, "spotMetaAndAssetCtxs": spot}


def genesis_fills(sim: Simulator) -> pa.Table:
    """One opening fill per position open at genesis, at the time it opened (for open times)."""
    u, p = sim.u, sim.pos
    c = p.key % u.n
    size = p.lots / u.scale[c]
    n = p.key.size
    times = np.where(p.hint_ms >= 0, p.hint_ms, sim.time_ms)
    return pa.table(
        {
            "address": sim.address.take(pa.array(p.key // u.n)),
            "coin": pa.array(u.coins).take(pa.array(c)),
            "px": p.entry,
            "sz": np.abs(size),
            "side": pa.array(np.where(size > 0, "B", "A")),
            "time": pa.array(times.astype(np.int64)).cast(FILLS.field("time").type),
            "start_position": np.zeros(n),
            "dir": pa.array(np.where(size > 0, "Open Long", "Open Short")),
            "closed_pnl": np.zeros(n),
            "fee": np.zeros(n),
            "tid": np.arange(n, dtype=np.int64),
            "liquidation": np.zeros(n, bool),
        },
        schema=FILLS,
    ).sort_by("time")


def genesis_staking(sim: Simulator) -> Flows:
    who = np.nonzero(sim.staked_hype > 0)[0]
    addresses = sim.address.take(pa.array(who)).to_pylist()
    return Flows(staking_user=addresses, staking=sim.staked_hype[who].tolist())


def deposits(sim: Simulator) -> Flows:
    """The deposits of the last step (wallet, USDC), in the order they were made."""
    who, amount = sim.last_deposits
    return Flows(usdc_user=sim.address.take(pa.array(who)).to_pylist(), usdc=amount.tolist())


def anchors(sim: Simulator) -> tuple[dict[str, float], dict[str, float]]:
    """Every wallet's all-time PnL and volume now (what a stats leaderboard would say)."""
    p, u = sim.pos, sim.u
    c, w = p.key % u.n, p.key // u.n
    av = sim.cash + np.bincount(w, weights=p.lots / u.scale[c] * sim.mark[c], minlength=sim.config.wallets)
    addresses = sim.address.to_pylist()
    return dict(zip(addresses, (av + sim.pnl_offset).tolist(), strict=True)), dict(
        zip(addresses, sim.volume.tolist(), strict=True)
    )
