"""Aggregates of one state update's open positions: market, coin, coin x cohort, coin x size bucket, cohort.

Every figure is a grouped sum over the open positions of the update (numpy `bincount` over integer group
codes), so each can be recomputed by hand from the open positions of that update.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hyperscope.domain import formulas
from hyperscope.domain.cohorts import SEGMENT_IDS
from hyperscope.domain.formulas import CLOSE_TO_LIQUIDATION_PROGRESS
from hyperscope.domain.heatmap import liquidation_bins
from hyperscope.domain.recency import TIMEFRAMES
from hyperscope.domain.state import StateUpdate
from hyperscope.tracking import Tracked

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


# the grouped tables whose groups come and go, and the columns that name a group
GROUP_KEYS = {
    "coin": ("coin",),
    "coin_segment": ("coin", "segment_id", "timeframe"),
    "coin_bucket": ("coin", "size_bucket"),
}


@dataclass(frozen=True)
class MetricRows:
    general: dict[str, float]
    coin: pa.Table
    coin_segment: pa.Table
    coin_bucket: pa.Table
    segment: pa.Table
    perp_volume: float
    wallets_equity: dict[str, float]
    liquidation: pa.Table  # every coin's non-empty liquidation-map bins (domain/heatmap.py)

    def groups(self) -> dict[str, pa.Table]:
        """The groups that hold positions, per grouped table (what the next update compares with)."""
        return {name: _present(getattr(self, name)).select(list(keys)) for name, keys in GROUP_KEYS.items()}


def _present(table: pa.Table) -> pa.Table:
    return table.filter(pc.greater(table.column("position_count"), 0))


def _with_emptied(table: pa.Table, keys: tuple[str, ...], before: pa.Table | None) -> pa.Table:
    """`table` plus a row of zeros for each group that held positions at the previous update and holds none
    now: a group that empties says so (a zero), instead of leaving its last row as the newest one."""
    if before is None or not before.num_rows:
        return table
    gone = pc.invert(pc.is_in(_key(before, keys), value_set=_key(table, keys)))
    emptied = before.filter(gone)
    if not emptied.num_rows:
        return table
    n = emptied.num_rows
    zeros = {
        name: pa.array(np.zeros(n, np.int64 if name.startswith(("position_count", "count_")) else np.float64))
        for name in SUM_FIELDS
    }
    rows = pa.table({**{k: emptied.column(k) for k in keys}, **zeros})
    return pa.concat_tables([table, rows.select(table.column_names).cast(table.schema)])


def _key(table: pa.Table, keys: tuple[str, ...]) -> pa.Array:
    parts = [pc.cast(table.column(k), pa.string()) for k in keys]
    return pc.binary_join_element_wise(*parts, "|") if len(parts) > 1 else parts[0]


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


# timeframes from the narrowest window to "all": a position of age class c counts in timeframes c, c+1, ...
_BY_WIDTH = ("24h", "7d", "30d", "all")


def _age_class(open_ms: np.ndarray, now: int) -> np.ndarray:
    """0 if opened within 24 h, 1 within 7 d, 2 within 30 d, else 3."""
    age = now - open_ms
    cls = np.full(len(open_ms), 3, np.int64)
    for i, name in reversed(list(enumerate(_BY_WIDTH[:-1]))):
        cls[age <= TIMEFRAMES[name]] = i  # type: ignore[operator]
    return cls


def _by_timeframe(codes: np.ndarray, cls: np.ndarray, n: int, parts: dict[str, np.ndarray]) -> list[dict]:
    """Grouped sums for every timeframe in one pass: bin by (group, age class), then accumulate classes."""
    sums = _grouped(codes * 4 + cls, n * 4, parts)
    cumulative = {k: np.cumsum(v.reshape(n, 4), axis=1) for k, v in sums.items()}
    return [{k: v[:, t] for k, v in cumulative.items()} for t in range(4)]


def compute(update: StateUpdate, tracked: Tracked, before: dict[str, pa.Table] | None = None) -> MetricRows:
    """All metric rows of one state update; `before` is the previous update's `MetricRows.groups()`, whose
    groups that emptied get a row of zeros."""
    before = before or {}
    markets = update.markets
    coins = markets.column("coin").to_numpy(zero_copy_only=False)
    nc = len(coins)
    parts = _contributions(tracked)
    coin = tracked.coin_index
    open_ms = tracked.open.column("open_time").cast(pa.int64()).to_numpy()
    cls = _age_class(open_ms, update.time)
    size_seg = tracked.open.column("size_segment").to_numpy().astype(np.int64)
    pnl_seg = tracked.open.column("pnl_segment").to_numpy().astype(np.int64)
    bucket = tracked.open.column("size_bucket").to_numpy().astype(np.int64)

    by_coin = _grouped(coin, nc, parts)
    by_coin["total_position_value"], by_coin["total_position_value_long"] = formulas.coin_values(
        coin,
        tracked.open.column("size").to_numpy(),
        parts["position_count_long"],
        markets.column("mark_px").to_numpy(),
        markets.column("sz_decimals").to_numpy(),
    )
    coin_table = _with_emptied(_table({"coin": coins}, by_coin), GROUP_KEYS["coin"], before.get("coin"))

    grid = np.arange(nc * 17)
    grid_coin, grid_seg = coins[grid // 17], (grid % 17).astype(np.int8)
    both_codes = np.concatenate([coin * 17 + size_seg, coin * 17 + pnl_seg])
    both_parts = {k: np.concatenate([v, v]) for k, v in parts.items()}
    per_timeframe = _by_timeframe(both_codes, np.concatenate([cls, cls]), nc * 17, both_parts)
    cs_tables = []
    for t, name in enumerate(_BY_WIDTH):
        table = _table({"coin": grid_coin, "segment_id": grid_seg}, per_timeframe[t])
        cs_tables.append(table.append_column("timeframe", pa.array([name] * table.num_rows, pa.string())))
    coin_segment = _with_emptied(pa.concat_tables(cs_tables), GROUP_KEYS["coin_segment"], before.get("coin_segment"))

    bgrid = np.arange(nc * 11)
    bucket_sums = _grouped(coin * 11 + bucket, nc * 11, parts)
    coin_bucket = _table({"coin": coins[bgrid // 11], "size_bucket": (bgrid % 11).astype(np.int8)}, bucket_sums)
    coin_bucket = _with_emptied(coin_bucket, GROUP_KEYS["coin_bucket"], before.get("coin_bucket"))

    profiles = tracked.profiles
    perp = profiles.column("perp_equity").to_numpy()
    active = profiles.column("count_open_positions").to_numpy() > 0
    oi, oi_long = float(by_coin["total_position_value"].sum()), float(by_coin["total_position_value_long"].sum())
    general = {
        "count": int(len(coin)),
        "count_long": int(parts["position_count_long"].sum()),
        "count_short": int(len(coin) - parts["position_count_long"].sum()),
        # from the per-coin sums, so that long equals short exactly when every coin balances
        "open_interest": oi,
        "open_interest_long": oi_long,
        "open_interest_short": oi - oi_long,
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
        segment=_segment_rows(tracked, parts, cls, size_seg, pnl_seg),
        perp_volume=float(markets.column("day_ntl_vlm").to_numpy().sum()),
        wallets_equity=wallets_equity,
        liquidation=_liquidation_rows(tracked, coins, markets.column("mark_px"), size_seg, pnl_seg),
    )


def _liquidation_rows(
    tracked: Tracked, coins: np.ndarray, marks: pa.ChunkedArray, size_seg: np.ndarray, pnl_seg: np.ndarray
) -> pa.Table:
    """Every coin's liquidation map of this update, its non-empty bins only (a missing bin holds nothing)."""
    o = tracked.open
    bins = liquidation_bins(
        tracked.coin_index,
        pc.fill_null(marks, np.nan).to_numpy(zero_copy_only=False),
        pc.fill_null(o.column("liquidation_px"), np.nan).to_numpy(zero_copy_only=False),
        o.column("value").to_numpy(),
        size_seg,
        pnl_seg,
    )
    return pa.table(
        {
            "coin": coins[bins["coin"]] if len(bins["coin"]) else pa.array([], pa.string()),
            "bin": bins["bin"].astype(np.int16),
            "liquidation_value": bins["value"],
            "position_count": bins["count"].astype(np.int64),
            "most_impacted_segment": bins["segment"].astype(np.int16),
        }
    )


def _segment_rows(
    tracked: Tracked, parts: dict[str, np.ndarray], cls: np.ndarray, size_seg: np.ndarray, pnl_seg: np.ndarray
) -> pa.Table:
    """Per cohort and timeframe, across all coins: open values and the perp equity of its wallets in position."""
    profiles = tracked.profiles
    nw = profiles.num_rows
    seg = np.concatenate([size_seg, pnl_seg])
    both = {
        k: np.concatenate([parts[k], parts[k]])
        for k in ("position_count", "position_count_long", "total_position_value", "total_position_value_long")
    }
    per_timeframe = _by_timeframe(seg, np.concatenate([cls, cls]), 17, both)
    # a wallet is in position for a timeframe when its most recently opened position falls within it
    youngest = np.full(nw, 4, np.int64)
    np.minimum.at(youngest, tracked.wallet_index, cls)
    perp = profiles.column("perp_equity").to_numpy()
    wallet_size = profiles.column("size_segment").to_numpy().astype(np.int64)
    wallet_pnl = profiles.column("pnl_segment").to_numpy().astype(np.int64)
    ids = np.array(SEGMENT_IDS)
    tables = []
    for t, name in enumerate(_BY_WIDTH):
        holds = youngest <= t
        weights = np.where(holds, perp, 0.0)
        equity = np.bincount(wallet_size, weights=weights, minlength=17) + np.bincount(
            wallet_pnl, weights=weights, minlength=17
        )
        traders = np.bincount(wallet_size[holds], minlength=17) + np.bincount(wallet_pnl[holds], minlength=17)
        sums = per_timeframe[t]
        value, value_long = sums["total_position_value"][ids], sums["total_position_value_long"][ids]
        tables.append(
            pa.table(
                {
                    "segment_id": ids.astype(np.int8),
                    "timeframe": pa.array([name] * len(ids)),
                    "position_count": np.rint(sums["position_count"][ids]).astype(np.int64),
                    "position_count_long": np.rint(sums["position_count_long"][ids]).astype(np.int64),
                    "open_value": value,
                    "open_long_value": value_long,
                    "open_short_value": value - value_long,
                    "active_perp_equity": equity[ids],
                    "traders": traders[ids].astype(np.int64),
                }
            )
        )
    return pa.concat_tables(tables)
