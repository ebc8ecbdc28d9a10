"""Funding-rate series in Coin Metrics' terms: assets, exchange-assets and markets, and their metrics.

Plain results (entity ids, epoch-ms times, float64 arrays with NaN for "no value"); the Coin Metrics API
family (`api/coinmetrics/`) shapes them. Identifiers (semantics.md section 10, docs/decisions.md):

- market: `hyperliquid-{coin}-future` (`hyperliquid-BTC-future`, `hyperliquid-xyz:GOLD-future`);
- asset: the base coin in lower case (`btc`, `gold`), over every dex's market of that base;
- exchange: `hyperliquid` for the main dex, `hyperliquid-{dex}` for a HIP-3 dex; exchange-asset:
  `{exchange}-{asset}` (`hyperliquid-btc`, `hyperliquid-xyz-gold`).

Margin classes: a market is USD-margined when its dex's collateral is a USD stablecoin, coin-margined when it
is the base asset; `all` holds every market. Every dex hyperscope knows settles in USDC, so `usd` equals `all`
and coin-margined metrics have no markets: they are unsupported (absent), never 0.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hyperscope.domain.coins import MAIN_DEX, base_of
from hyperscope.domain.funding import ROLLING_HOURS, aggregate_8h, period_rate, rolling_cumulative
from hyperscope.domain.time import HOUR_MS
from hyperscope.store.base import Store

USD_STABLECOINS = frozenset({"USDC", "USDT", "USDH", "USDE", "USD"})
# Collateral of each dex; a dex not listed settles in USDC (every HIP-3 dex seen so far does).
DEX_COLLATERAL: dict[str, str] = {MAIN_DEX: "USDC"}
MARGINS = ("usd", "coin", "all")
AGGREGATE_PERIODS = ("8h", "1d", "30d", "1y")
METRICS: dict[str, tuple[str, str, str]] = {  # id -> (kind, margin, period or window)
    **{
        f"futures_aggregate_funding_rate_{m}_margin_{p}_period": ("aggregate", m, p)
        for m in MARGINS
        for p in AGGREGATE_PERIODS
    },
    **{
        f"futures_cumulative_funding_rate_{m}_margin_rolling_{w}": ("cumulative", m, w)
        for m in MARGINS
        for w in ROLLING_HOURS
    },
}
# the names the older docs page prints (no `rolling_`): accepted, answered under the current name
ALIASES = {
    f"futures_cumulative_funding_rate_{m}_margin_{w}": f"futures_cumulative_funding_rate_{m}_margin_rolling_{w}"
    for m in MARGINS
    for w in ROLLING_HOURS
}
LOOKBACK_MS = max(ROLLING_HOURS.values()) * HOUR_MS
FUNDING_INTERVAL_MS = HOUR_MS  # Hyperliquid settles funding every hour, at the hour


def margin_of(dex: str, base: str) -> str | None:
    """`usd` or `coin` for a market of `dex` with base `base`; None when its collateral is neither."""
    collateral = DEX_COLLATERAL.get(dex, "USDC").upper()
    if collateral in USD_STABLECOINS:
        return "usd"
    return "coin" if collateral == base.upper() else None


def market_id(coin: str) -> str:
    return f"hyperliquid-{coin}-future"


def exchange_of(dex: str) -> str:
    return "hyperliquid" if dex == MAIN_DEX else f"hyperliquid-{dex}"


@dataclass(frozen=True)
class Universe:
    """Every entity and the markets (coins) it covers, with each market's dex and margin class."""

    assets: dict[str, tuple[str, ...]]
    exchange_assets: dict[str, tuple[str, ...]]
    markets: dict[str, str]  # market id -> coin
    dex: dict[str, str]  # coin -> dex
    margin: dict[str, str | None]  # coin -> usd | coin | None

    def members(self, kind: str) -> dict[str, tuple[str, ...]]:
        if kind == "asset":
            return self.assets
        if kind == "exchange_asset":
            return self.exchange_assets
        return {m: (c,) for m, c in self.markets.items()}


@dataclass
class Series:
    """One entity's hourly metric values: `times` (epoch ms) and, per supported metric, a float64 array
    aligned with them (NaN: no value at that hour)."""

    times: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)


def supported(universe: Universe, kind: str, entity: str, metric: str) -> bool:
    """Whether an entity has any market of the metric's margin class (unsupported metrics are left out)."""
    margin = METRICS[metric][1]
    coins = universe.members(kind)[entity]
    return any(margin == "all" or universe.margin[c] == margin for c in coins)


class FundingService:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._universe: tuple[int | None, Universe] | None = None

    def universe(self) -> Universe:
        latest = self.store.latest()
        height = latest.height if latest else None
        with self._lock:
            if self._universe is None or self._universe[0] != height:
                self._universe = (height, self._build_universe())
            return self._universe[1]

    def _build_universe(self) -> Universe:
        assets: dict[str, list[str]] = {}
        exchange_assets: dict[str, list[str]] = {}
        markets, dexes, margins = {}, {}, {}
        for row in self.store.coins():
            coin, dex = row["coin"], row["dex"]
            asset = re.sub(r"[^a-z0-9]", "", base_of(coin).lower())
            assets.setdefault(asset, []).append(coin)
            exchange_assets.setdefault(f"{exchange_of(dex)}-{asset}", []).append(coin)
            markets[market_id(coin)] = coin
            dexes[coin] = dex
            margins[coin] = margin_of(dex, base_of(coin))
        return Universe(
            {k: tuple(v) for k, v in assets.items()},
            {k: tuple(v) for k, v in exchange_assets.items()},
            markets,
            dexes,
            margins,
        )

    def series(self, kind: str, entities: list[str], metrics: list[str], start: int, end: int) -> dict[str, Series]:
        """Hourly values of `metrics` (current ids) for each entity over [start, end], hours with no value in
        any requested metric left out."""
        universe = self.universe()
        members = universe.members(kind)
        coins = sorted({c for e in entities for c in members[e]})
        lookback = LOOKBACK_MS if any(METRICS[m][0] == "cumulative" for m in metrics) else 0
        rows = self.store.funding_rows(coins, start - lookback, end)
        coin_index = {c: i for i, c in enumerate(coins)}
        row_coin = pc.index_in(rows.column("coin"), value_set=pa.array(coins)).to_numpy(zero_copy_only=False)
        # rows come sorted by coin: each coin's rows are one slice
        bounds = np.searchsorted(row_coin, np.arange(len(coins) + 1))
        hour = rows.column("time").to_numpy()
        rate = rows.column("rate").to_numpy()
        oi = rows.column("open_interest_usd").to_numpy()
        # every (entity, market) membership, each market's rows repeated for each entity that holds it
        out: dict[str, Series] = {}
        for margin in {METRICS[m][1] for m in metrics}:
            parts_g, parts_i = [], []
            for g, entity in enumerate(entities):
                for coin in members[entity]:
                    if margin == "all" or universe.margin[coin] == margin:
                        c = coin_index[coin]
                        idx = np.arange(bounds[c], bounds[c + 1])
                        parts_g.append(np.full(idx.size, g, np.int64))
                        parts_i.append(idx)
            if not parts_i:
                continue
            take = np.concatenate(parts_i)
            group, hours, afr = aggregate_8h(np.concatenate(parts_g), hour[take], rate[take], oi[take])
            for metric in metrics:
                kind_m, margin_m, span = METRICS[metric]
                if margin_m != margin:
                    continue
                if kind_m == "aggregate":
                    values = period_rate(afr, hours, span)
                else:
                    values = rolling_cumulative(group, hours, afr, ROLLING_HOURS[span])
                inside = (hours >= start) & (hours <= end)
                edges = np.searchsorted(group, np.arange(len(entities) + 1))  # rows come sorted by group
                for g, entity in enumerate(entities):
                    if not supported(universe, kind, entity, metric):
                        continue
                    lo, hi = edges[g], edges[g + 1]
                    mine = inside[lo:hi]
                    series = out.setdefault(entity, Series(np.zeros(0, np.int64)))
                    series.values[metric] = _align(series, hours[lo:hi][mine], values[lo:hi][mine])
        return out

    def market_rates(
        self, markets: list[str], start: int, end: int
    ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per market: hourly (times, rates, database times) over [start, end], each time the end of its
        funding interval (Coin Metrics' convention): the rate observed during the hour from H is settled at
        H + 1 h, and is stamped so."""
        universe = self.universe()
        coins = [universe.markets[m] for m in markets]
        rows = self.store.funding_rows(
            coins, start - FUNDING_INTERVAL_MS, end - FUNDING_INTERVAL_MS, with_database_time=True
        )
        coin = np.array(rows.column("coin").to_pylist(), dtype=object)
        out = {}
        for m, c in zip(markets, coins, strict=True):
            mine = coin == c
            out[m] = (
                rows.column("time").to_numpy()[mine] + FUNDING_INTERVAL_MS,
                rows.column("rate").to_numpy()[mine],
                rows.column("database_time").to_numpy()[mine],
            )
        return out

    def coverage(self) -> dict[str, tuple[int, int]]:
        """coin -> (first, last) hour with open interest."""
        return self.store.funding_coverage()


def _align(series: Series, hours: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values on the series' time axis, growing the axis (and NaN-padding earlier metrics) as needed."""
    if series.times.size == 0 and not series.values:
        series.times = hours
        return values
    times = np.union1d(series.times, hours)
    if times.size != series.times.size:
        for name, old in series.values.items():
            grown = np.full(times.size, np.nan)
            grown[np.searchsorted(times, series.times)] = old
            series.values[name] = grown
        series.times = times
    aligned = np.full(times.size, np.nan)
    aligned[np.searchsorted(times, hours)] = values
    return aligned
