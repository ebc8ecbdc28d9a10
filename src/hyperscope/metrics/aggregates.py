"""Aggregates of one state update's open positions: market, coin, coin x cohort, coin x size bucket, cohort.

Every figure is a grouped sum over the open positions of the update (numpy `bincount` over integer group
codes), so each can be recomputed by hand from the open positions of that update.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from hyperscope.domain.cohorts import SEGMENT_IDS
from hyperscope.domain.formulas import CLOSE_TO_LIQUIDATION_PROGRESS
from hyperscope.domain.state import StateUpdate
from hyperscope.tracking import Tracked

DAY_MS = 86_400_000
# positionRecencyTimeframe / openedWithin: only positions opened within the window count
TIMEFRAMES: dict[str, int | None] = {"all": None, "24h": DAY_MS, "7d": 7 * DAY_MS, "30d": 30 * DAY_MS}

# name in the metric tables -> how one position contributes
SUM_FIELDS = (
    "position_count",
    "position_count_long",
    "total_position_value",
    "total_position_value_long",
    "total_position_size",
    "total_position_size_long",
    "total_funding",
    "total_unrealized_pnl",
    "count_in_profit",
    "value_close_to_liquidation",
)


@dataclass(frozen=True)
class MetricRows:
    general: dict[str, float]
    coin: pa.Table
    coin_segment: pa.Table
    coin_bucket: pa.Table
    segment: pa.Table
    perp_volume: float
    wallets_equity: dict[str, float]


def _contributions(tracked: Tracked) -> dict[str, np.ndarray]:
    """Per open position, its contribution to each summed field."""
    o = tracked.open
    is_long = (o.column("side").to_numpy(zero_copy_only=False) == "long").astype(np.float64)
    value = o.column("value").to_numpy()
    size = o.column("size").to_numpy()
    upnl = o.column("unrealized_pnl").to_numpy()
    progress = o.column("liquidation_progress").to_numpy()
    return {
        "position_count": np.ones(len(value)),
        "position_count_long": is_long,
        "total_position_value": value,
        "total_position_value_long": value * is_long,
        "total_position_size": size,
        "total_position_size_long": size * is_long,
        "total_funding": o.column("funding").to_numpy(),
        "total_unrealized_pnl": upnl,
        "count_in_profit": (upnl > 0).astype(np.float64),
        "value_close_to_liquidation": value * (progress >= CLOSE_TO_LIQUIDATION_PROGRESS),
    }


def _grouped(codes: np.ndarray, n: int, parts: dict[str, np.ndarray], mask: np.ndarray | None = None) -> dict:
    if mask is not None:
        codes = codes[mask]
        parts = {k: v[mask] for k, v in parts.items()}
    return {k: np.bincount(codes, weights=v, minlength=n) for k, v in parts.items()}


def _table(keys: dict[str, np.ndarray], sums: dict[str, np.ndarray]) -> pa.Table:
    present = sums["position_count"] > 0
    columns: dict[str, pa.Array | np.ndarray] = {k: v[present] for k, v in keys.items()}
    for name in SUM_FIELDS:
        values = sums[name][present]
        if name.startswith(("position_count", "count_")):
            values = np.rint(values).astype(np.int64)
        columns[name] = values
    return pa.table(columns)


def compute(update: StateUpdate, tracked: Tracked) -> MetricRows:
    """All metric rows of one state update."""
    markets = update.markets
    coins = markets.column("coin").to_numpy(zero_copy_only=False)
    nc = len(coins)
    parts = _contributions(tracked)
    coin = tracked.coin_index
    open_ms = tracked.open.column("open_time").cast(pa.int64()).to_numpy()
    size_seg = tracked.open.column("size_segment").to_numpy().astype(np.int64)
    pnl_seg = tracked.open.column("pnl_segment").to_numpy().astype(np.int64)
    bucket = tracked.open.column("size_bucket").to_numpy().astype(np.int64)

    by_coin = _grouped(coin, nc, parts)
    coin_table = _table({"coin": coins}, by_coin)

    grid = np.arange(nc * 17)
    grid_coin, grid_seg = coins[grid // 17], (grid % 17).astype(np.int8)
    both_codes = np.concatenate([coin * 17 + size_seg, coin * 17 + pnl_seg])
    both_parts = {k: np.concatenate([v, v]) for k, v in parts.items()}
    both_open = np.concatenate([open_ms, open_ms])
    cs_tables, seg_tables = [], []
    for name, window in TIMEFRAMES.items():
        mask = None if window is None else both_open >= update.time - window
        sums = _grouped(both_codes, nc * 17, both_parts, mask)
        table = _table({"coin": grid_coin, "segment_id": grid_seg}, sums)
        cs_tables.append(table.append_column("timeframe", pa.array([name] * table.num_rows, pa.string())))
        seg_tables.append(_segment_rows(update, tracked, parts, window, name))
    coin_segment = pa.concat_tables(cs_tables)

    bgrid = np.arange(nc * 11)
    bucket_sums = _grouped(coin * 11 + bucket, nc * 11, parts)
    coin_bucket = _table({"coin": coins[bgrid // 11], "size_bucket": (bgrid % 11).astype(np.int8)}, bucket_sums)

    profiles = tracked.profiles
    perp = profiles.column("perp_equity").to_numpy()
    active = profiles.column("count_open_positions").to_numpy() > 0
    general = {
        "count": int(len(coin)),
        "count_long": int(parts["position_count_long"].sum()),
        "count_short": int(len(coin) - parts["position_count_long"].sum()),
        "open_interest": float(parts["total_position_value"].sum()),
        "open_interest_long": float(parts["total_position_value_long"].sum()),
        "open_interest_short": float(parts["total_position_value"].sum() - parts["total_position_value_long"].sum()),
        "perp_equity": float(perp[active].sum()),
        "count_in_profit": int(parts["count_in_profit"].sum()),
    }
    wallets_equity = {
        "total": float(profiles.column("total_equity").to_numpy().sum()),
        "perp": float(perp.sum()),
        "spot": float(profiles.column("spot_equity").to_numpy().sum()),
        "staking": float(profiles.column("staking_equity").to_numpy().sum()),
        "vault": float(profiles.column("vault_equity").to_numpy().sum()),
    }
    return MetricRows(
        general=general,
        coin=coin_table,
        coin_segment=coin_segment,
        coin_bucket=coin_bucket,
        segment=pa.concat_tables(seg_tables),
        perp_volume=float(markets.column("day_ntl_vlm").to_numpy().sum()),
        wallets_equity=wallets_equity,
    )


def _segment_rows(
    update: StateUpdate, tracked: Tracked, parts: dict[str, np.ndarray], window: int | None, name: str
) -> pa.Table:
    """Per cohort, across all coins: open values and the perp equity of its wallets holding positions."""
    o = tracked.open
    mask = np.ones(o.num_rows, bool)
    if window is not None:
        mask = o.column("open_time").cast(pa.int64()).to_numpy() >= update.time - window
    profiles = tracked.profiles
    nw = profiles.num_rows
    holds = np.bincount(tracked.wallet_index[mask], minlength=nw) > 0
    perp = profiles.column("perp_equity").to_numpy()
    wallet_size = profiles.column("size_segment").to_numpy().astype(np.int64)
    wallet_pnl = profiles.column("pnl_segment").to_numpy().astype(np.int64)
    active_equity = np.bincount(wallet_size[holds], weights=perp[holds], minlength=17) + np.bincount(
        wallet_pnl[holds], weights=perp[holds], minlength=17
    )
    traders = np.bincount(wallet_size[holds], minlength=17) + np.bincount(wallet_pnl[holds], minlength=17)
    seg = np.concatenate([o.column("size_segment").to_numpy(), o.column("pnl_segment").to_numpy()]).astype(np.int64)
    m2 = np.concatenate([mask, mask])
    value = np.concatenate([parts["total_position_value"]] * 2)[m2]
    value_long = np.concatenate([parts["total_position_value_long"]] * 2)[m2]
    count = np.bincount(seg[m2], minlength=17)
    count_long = np.bincount(seg[m2], weights=np.concatenate([parts["position_count_long"]] * 2)[m2], minlength=17)
    open_value = np.bincount(seg[m2], weights=value, minlength=17)
    open_long = np.bincount(seg[m2], weights=value_long, minlength=17)
    ids = np.array(SEGMENT_IDS)
    return pa.table(
        {
            "segment_id": ids.astype(np.int8),
            "timeframe": pa.array([name] * len(ids)),
            "position_count": count[ids].astype(np.int64),
            "position_count_long": np.rint(count_long[ids]).astype(np.int64),
            "open_value": open_value[ids],
            "open_long_value": open_long[ids],
            "open_short_value": open_value[ids] - open_long[ids],
            "active_perp_equity": active_equity[ids],
            "traders": traders[ids].astype(np.int64),
        }
    )
