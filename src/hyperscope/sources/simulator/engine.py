"""The simulated market: wallets, matched trading, funding, margin, liquidations and resting orders.

Everything is vectorised numpy over three kinds of arrays: wallets (index-aligned), open positions (sorted by
the key `wallet * n_coins + coin`, sizes held as signed integer lots so that long size equals short size
exactly) and resting orders. Every size change is a fill between two wallets, so the market stays balanced:
liquidated positions are taken over by the liquidator vault (wallet 0) at the mark price.

Deterministic: the same `SimConfig` gives the same sequence of state updates, whatever the wall clock.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hyperscope.domain import formulas
from hyperscope.domain.state import FILLS, MARKETS, ORDERS, POSITIONS, WALLETS, StateUpdate
from hyperscope.domain.time import DAY_MS
from hyperscope.sources.simulator.universe import Universe, build_universe

LEVERAGES = np.array([1, 2, 3, 5, 10, 15, 20, 25, 40, 50], dtype=np.float64)
# leverage settings as traders pick them: most between 5x and 20x (upstream's market carries about 2.6x
# open value per dollar of perp equity; see `_fund_wallets`)
LEVERAGE_WEIGHTS = np.array([2, 4, 7, 12, 16, 10, 10, 6, 5, 3], dtype=np.float64)
FEE_RATE = 0.0003
# per-wallet and per-coin arrays a checkpoint carries
_STATE_ARRAYS = (
    "cash", "pnl_offset", "volume", "spot_usdc", "spot_hype", "staked_hype", "vault_equity",
    "oracle", "premium", "funding_rate", "mark", "mid", "activity",
)  # fmt: skip

SIZE_SIGMA = 3.2  # log-spread of position values (see _genesis_positions)
BACKGROUND_TURNOVER = 0.2  # flow that holds no position, per day, as a share of open interest


@dataclass(frozen=True)
class SimConfig:
    """Scale and seed of a simulated market. `preset()` gives the named scales."""

    seed: int = 7
    wallets: int = 20_000
    positions: int = 12_000  # target number of open positions
    coins: int = 300
    cadence_s: int = 900  # market time simulated per state update
    start_height: int = 800_000_000
    blocks_per_update: int = 10_000
    market_oi_usd: float = 8e9  # two-sided open interest at the `positions` scale below
    reference_positions: int = 200_000
    turnover: float = 0.03  # share of the target position count traded per step
    order_ratio: float = 1.2  # resting orders per open position

    @property
    def oi_usd(self) -> float:
        return self.market_oi_usd * self.positions / self.reference_positions


def preset(scale: str, **overrides: Any) -> SimConfig:
    """`tiny` (tests), `small` (the default, starts in seconds) or `bench` (300k wallets, 200k positions)."""
    scales = {
        "tiny": {"wallets": 2_000, "positions": 1_200, "coins": 60},
        "small": {"wallets": 20_000, "positions": 12_000, "coins": 300},
        "bench": {"wallets": 300_000, "positions": 200_000, "coins": 300},
    }
    if scale not in scales:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(scales)}")
    return SimConfig(**{**scales[scale], **overrides})


@dataclass
class _Positions:
    key: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    lots: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    entry: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lev: np.ndarray = field(default_factory=lambda: np.zeros(0))
    iso: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    iso_margin: np.ndarray = field(default_factory=lambda: np.zeros(0))
    funding: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hint_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    FIELDS = ("key", "lots", "entry", "lev", "iso", "iso_margin", "funding", "hint_ms")

    def take(self, idx: np.ndarray) -> _Positions:
        return _Positions(*(getattr(self, f)[idx] for f in self.FIELDS))

    def concat(self, other: _Positions) -> _Positions:
        return _Positions(*(np.concatenate([getattr(self, f), getattr(other, f)]) for f in self.FIELDS))


class Simulator:
    """A deterministic simulated Hyperliquid market. Call `step(time_ms)` once per state update."""

    def __init__(self, config: SimConfig, genesis_ms: int) -> None:
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.u: Universe = build_universe(self.rng, config.coins)
        self.step_index = 0
        self.time_ms = genesis_ms
        self._genesis(genesis_ms)

    @property
    def steps_per_day(self) -> int:
        return max(1, DAY_MS // (self.config.cadence_s * 1000))

    # ----------------------------------------------------------------- setup

    def _genesis(self, now_ms: int) -> None:
        cfg, rng, u = self.config, self.rng, self.u
        nw, nc = cfg.wallets, u.n
        digits = np.frombuffer(b"0123456789abcdef", np.uint8)
        raw = digits[rng.integers(0, 16, size=(nw, 40))]
        prefix = np.broadcast_to(np.frombuffer(b"0x", np.uint8), (nw, 2))
        self.address = pa.array(np.hstack([prefix, raw]).view("S42").ravel()).cast(pa.string())

        self.n_makers = max(8, nw // 2_000)
        activity = rng.pareto(1.3, nw) + 0.05
        activity[0] = 0.0  # the liquidator vault does not trade on its own
        activity[1 : 1 + self.n_makers] = activity.sum() * 0.4 / self.n_makers
        self.activity = activity / activity.sum()

        self.oracle = u.price.copy()
        self.premium = rng.normal(0.0001, 0.0002, nc)
        self.funding_rate = formulas.hourly_funding_rate(self.premium)
        self.mark = self.oracle * (1 + self.premium)
        self.mid = self.mark * (1 + rng.normal(0, 0.0001, nc))
        count_share = u.oi_share**0.75
        self.count_share = count_share / count_share.sum()

        pos = self._genesis_positions(now_ms)
        self.pos = pos
        self.cash = np.zeros(nw)
        self._fund_wallets(now_ms)
        bg = self._background_volume()
        self.volume_ring: list[tuple[int, np.ndarray]] = [
            (now_ms - k * cfg.cadence_s * 1000, bg) for k in range(self.steps_per_day)
        ]
        self.next_oid = 100_000_000
        self.next_tid = 1
        self.last_deposits: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0))
        self.orders: dict[str, np.ndarray] = self._new_orders(int(cfg.order_ratio * cfg.positions), now_ms)

    def _genesis_positions(self, now_ms: int) -> _Positions:
        cfg, rng, u = self.config, self.rng, self.u
        nc = u.n
        per_coin = np.maximum(2, np.round(cfg.positions * self.count_share)).astype(np.int64)
        n_long = np.clip(np.round(per_coin * rng.uniform(0.42, 0.58, nc)), 1, per_coin - 1).astype(np.int64)
        coin = np.repeat(np.arange(nc), per_coin)
        offset = np.arange(coin.size) - np.repeat(np.cumsum(per_coin) - per_coin, per_coin)
        side = np.where(offset < n_long[coin], 1, -1)
        # position values spread as on the real exchange: a lognormal with sigma ~3 puts half of BTC's
        # positions under $1k and 60% of its value in the 0.5% over $2.5m (upstream's breakdown by size)
        notional = rng.lognormal(0.0, SIZE_SIGMA, coin.size)
        group = coin * 2 + (side > 0)
        group_sum = np.bincount(group, weights=notional, minlength=2 * nc)
        notional = notional / group_sum[group] * (cfg.oi_usd * u.oi_share[coin] / 2)
        lots = np.maximum(1, np.round(notional / (u.price[coin] * u.lot[coin]))).astype(np.int64)
        # balance each coin exactly: the largest position on the smaller side takes the difference
        diff = np.bincount(coin, weights=(side * lots).astype(np.float64), minlength=nc).astype(np.int64)
        order = np.lexsort((lots, side, coin))
        last_of_group = order[np.r_[np.nonzero(np.diff(group[order]))[0], order.size - 1]]
        for_long = last_of_group[side[last_of_group] > 0]
        for_short = last_of_group[side[last_of_group] < 0]
        lots[for_short] += np.maximum(diff[coin[for_short]], 0)
        lots[for_long] += np.maximum(-diff[coin[for_long]], 0)

        wallet = self._unique_holders(coin)
        iso = u.hip3[coin] | (rng.random(coin.size) < 0.25)
        lev = self._pick_leverage(coin)
        # whales run lower leverage than small accounts (their accounts carry most of the market's equity)
        usd = lots * u.lot[coin] * u.price[coin]
        lev = np.where(usd > 2.5e6, np.minimum(lev, 3.0), np.where(usd > 2.5e5, np.minimum(lev, 5.0), lev))
        age = np.minimum(rng.exponential(10 * DAY_MS, coin.size), 120 * DAY_MS).astype(np.int64)
        # entries spread as far as the price could move since the position opened: old positions sit deep in
        # profit or loss, and some near their liquidation price, as on the real exchange
        years = age / (365 * DAY_MS) + 1 / 365
        entry = u.price[coin] * np.exp(rng.normal(0, u.vol[coin] * np.sqrt(years)))
        notional_entry = lots * u.lot[coin] * entry
        notional_mark = lots * u.lot[coin] * u.price[coin]
        upnl = side * lots * u.lot[coin] * (u.price[coin] - entry)
        # isolated margin covers the loss so far plus a maintenance buffer, thin for some
        mmr = formulas.maintenance_rate(u.max_leverage[coin])
        keep_alive = -upnl + notional_mark * mmr * rng.uniform(1.15, 4.0, coin.size)
        iso_margin = np.maximum(notional_entry / lev * rng.uniform(1.0, 1.6, coin.size), keep_alive)
        pos = _Positions(
            key=wallet * nc + coin,
            lots=side * lots,
            entry=entry,
            lev=lev,
            iso=iso,
            iso_margin=np.where(iso, iso_margin, 0.0),
            funding=np.zeros(coin.size),
            hint_ms=now_ms - 60_000 - age,
        )
        return pos.take(np.argsort(pos.key, kind="stable"))

    def _unique_holders(self, coin: np.ndarray) -> np.ndarray:
        rng, nw, nc = self.rng, self.config.wallets, self.u.n
        weights = self.activity.copy()
        weights[1 : 1 + self.n_makers] *= 0.02  # makers hold inventory from trading, not at genesis
        weights /= weights.sum()
        wallet = rng.choice(nw, size=coin.size, p=weights)
        for _ in range(50):
            key = wallet * nc + coin
            _, first = np.unique(key, return_index=True)
            dup = np.ones(key.size, bool)
            dup[first] = False
            if not dup.any():
                break
            wallet[dup] = rng.integers(1 + self.n_makers, nw, dup.sum())
        return wallet.astype(np.int64)

    def _pick_leverage(self, coin: np.ndarray) -> np.ndarray:
        choice = self.rng.choice(LEVERAGES, size=coin.size, p=LEVERAGE_WEIGHTS / LEVERAGE_WEIGHTS.sum())
        return np.minimum(choice, self.u.max_leverage[coin].astype(np.float64))

    def _fund_wallets(self, now_ms: int) -> None:
        rng, nw = self.rng, self.config.wallets
        p = self.pos
        w, c = p.key // self.u.n, p.key % self.u.n
        size = p.lots * self.u.lot[c]
        notional = np.abs(size) * self.mark[c]
        cross_margin = np.bincount(w, weights=np.where(p.iso, 0.0, notional / p.lev), minlength=nw)
        upnl = size * (self.mark[c] - p.entry)
        iso_margin = np.bincount(w, weights=np.where(p.iso, np.maximum(p.iso_margin + upnl, 0.0), 0.0), minlength=nw)
        idle = rng.lognormal(5.0, 2.0, nw) * (rng.random(nw) < 0.5)
        # a margin buffer above what the positions need: thin for most, a few very well collateralised
        buffer = np.where(rng.random(nw) < 0.85, rng.uniform(1.02, 1.5, nw), rng.uniform(2.0, 5.0, nw))
        target = cross_margin * buffer + iso_margin + idle
        target[1 : 1 + self.n_makers] = rng.uniform(0.5, 1.5, self.n_makers) * 0.02 * self.config.oi_usd / self.n_makers
        target[0] = self.config.oi_usd * 0.01
        exposure = np.bincount(w, weights=size * self.mark[c], minlength=nw)
        # cash such that account value = target; isolated uPnL is already inside the isolated margin
        self.cash = target - exposure
        positive = rng.random(nw) < 0.42
        magnitude = target * rng.lognormal(-0.6, 1.4, nw) + rng.lognormal(5.0, 2.5, nw)
        pnl_hist = np.where(positive, magnitude, -magnitude)
        self.pnl_offset = pnl_hist - target
        self.volume = (np.abs(pnl_hist) * 40 + target * 15) * rng.lognormal(0, 0.5, nw)
        hype = self.u.coins.index("HYPE")
        perp_total = target.sum()
        self.spot_usdc = rng.lognormal(6, 2.5, nw) * (rng.random(nw) < 0.35)
        self.spot_hype = rng.lognormal(3, 2.5, nw) * (rng.random(nw) < 0.15)
        self.staked_hype = rng.lognormal(5, 2.5, nw) * (rng.random(nw) < 0.08)
        self.vault_equity = rng.lognormal(8, 2.0, nw) * (rng.random(nw) < 0.04)
        px = self.oracle[hype]
        self.spot_usdc *= 0.5 * perp_total / max(self.spot_usdc.sum(), 1.0)
        self.spot_hype *= 0.3 * perp_total / max(self.spot_hype.sum() * px, 1.0)
        self.staked_hype *= 3.5 * perp_total / max(self.staked_hype.sum() * px, 1.0)
        self.vault_equity *= 0.05 * perp_total / max(self.vault_equity.sum(), 1.0)
        self.vault_equity[0] = 0.0
        self.cash[0] += self.vault_equity.sum()  # wallet 0 is also the vault: it holds its followers' money
        self._hype = hype

    def _background_volume(self) -> np.ndarray:
        """Notional traded per step by flow that holds no position (market makers round-tripping)."""
        oi = self.config.oi_usd * self.u.oi_share
        return oi * BACKGROUND_TURNOVER * self.config.cadence_s / 86_400 * self.rng.lognormal(0, 0.3, self.u.n)

    # ----------------------------------------------------------------- stepping

    def step(self, time_ms: int) -> StateUpdate:
        """Advance one cadence of market time and return the state update stamped `time_ms`."""
        return self._state_update(time_ms, self.advance(time_ms))

    def advance(self, time_ms: int) -> pa.Table:
        """Advance one cadence of market time to `time_ms`; returns the fills made on the way."""
        if time_ms <= self.time_ms:
            raise ValueError(f"time must move forward: {time_ms} <= {self.time_ms}")
        prev_ms = self.time_ms
        self.step_index += 1
        self.time_ms = time_ms
        self._move_prices()
        self._pay_funding()
        fills = [self._trade(prev_ms, time_ms)]
        fills.append(self._liquidate(time_ms))
        self._deposits()
        self._update_orders(time_ms)
        traded = np.zeros(self.u.n)
        fill_table = pa.concat_tables(fills)
        if fill_table.num_rows:
            fc = pc.index_in(fill_table.column("coin"), value_set=pa.array(self.u.coins)).to_numpy()
            notional = fill_table.column("px").to_numpy() * fill_table.column("sz").to_numpy()
            traded = np.bincount(fc, weights=notional, minlength=self.u.n) / 2  # each trade has two fills
        # The rolling 24 h volume covers 24 h of market time, i.e. the last day's worth of steps: live
        # updates may be stamped seconds apart while each one simulates a whole cadence.
        self.volume_ring.append((time_ms, self._background_volume() + traded))
        self.volume_ring = self.volume_ring[-self.steps_per_day :]
        return fill_table

    def _move_prices(self) -> None:
        rng, u = self.rng, self.u
        dt = self.config.cadence_s / (365 * 86_400)
        btc = rng.normal()
        idio = rng.normal(size=u.n)
        z = u.beta * btc + np.sqrt(np.maximum(0.0, 1 - u.beta**2)) * idio
        jumps = (rng.random(u.n) < 0.02 * self.config.cadence_s / 86_400) * rng.normal(0, 0.06, u.n)
        ret = -0.5 * u.vol**2 * dt + u.vol * np.sqrt(dt) * z + jumps
        self.oracle = self.oracle * np.exp(ret)
        self.premium = 0.8 * self.premium + rng.normal(0.00003, 0.00015, u.n)
        self.funding_rate = formulas.hourly_funding_rate(self.premium)
        self.mark = self.oracle * (1 + self.premium)
        self.mid = self.mark * (1 + rng.normal(0, 0.0001, u.n))

    def _pay_funding(self) -> None:
        p = self.pos
        if not p.key.size:
            return
        c, w = p.key % self.u.n, p.key // self.u.n
        hours = self.config.cadence_s / 3600
        received = -(p.lots * self.u.lot[c]) * self.oracle[c] * self.funding_rate[c] * hours
        p.funding += received
        p.iso_margin += np.where(p.iso, received, 0.0)
        self.cash += np.bincount(w, weights=received, minlength=self.config.wallets)

    def _account(self) -> dict[str, np.ndarray]:
        """Per-position and per-wallet margin state at the current mark."""
        p, u, nw = self.pos, self.u, self.config.wallets
        c, w = p.key % u.n, p.key // u.n
        size = p.lots / u.scale[c]
        mark = self.mark[c]
        notional = np.abs(size) * mark
        mmr = formulas.maintenance_rate(u.max_leverage[c])
        mm = notional * mmr
        upnl = size * (mark - p.entry)
        av = self.cash + np.bincount(w, weights=size * mark, minlength=nw)
        iso_eq = np.where(p.iso, p.iso_margin + upnl, 0.0)
        cross_eq = av - np.bincount(w, weights=iso_eq, minlength=nw)
        cross_mm = np.bincount(w, weights=np.where(p.iso, 0.0, mm), minlength=nw)
        used = np.bincount(w, weights=np.where(p.iso, iso_eq, notional / p.lev), minlength=nw)
        return {
            "c": c, "w": w, "size": size, "mark": mark, "mm": mm, "mmr": mmr, "upnl": upnl, "av": av,
            "iso_eq": iso_eq, "cross_eq": cross_eq, "cross_mm": cross_mm, "used": used, "notional": notional,
        }  # fmt: skip

    def _trade(self, prev_ms: int, time_ms: int) -> pa.Table:
        cfg, rng, u = self.config, self.rng, self.u
        p, nc = self.pos, u.n
        n_pos = p.key.size
        acct = self._account()
        free = np.maximum(acct["av"] - acct["used"], 0.0)
        n_trades = int(rng.poisson(cfg.turnover * cfg.positions))
        p_close = float(np.clip(0.5 + 4.0 * (n_pos - cfg.positions) / cfg.positions, 0.1, 0.9))
        n_close = int(rng.binomial(n_trades, p_close)) if n_pos else 0
        n_open = n_trades - n_close

        # closing trades: an existing position trades down against an opposite holder or a new wallet
        # big positions are held longer than small ones (whales trade less often for their size)
        stay = np.abs(acct["notional"]) + 1.0
        weights = stay**-0.3 / np.sum(stay**-0.3) if n_pos else None
        i = np.unique(rng.choice(n_pos, n_close, p=weights)) if n_close and n_pos else np.zeros(0, np.int64)
        holder_side = np.sign(p.lots[i])
        full = rng.random(i.size) < 0.6
        close_lots = np.where(full, np.abs(p.lots[i]), np.maximum(1, np.abs(p.lots[i]) * rng.uniform(0.2, 0.9, i.size)))
        close_lots = close_lots.astype(np.int64)
        ci = p.key[i] % nc
        # the other side either trades down its own opposite position (never past flat) or opens against the
        # closer, sized within its free margin: nobody ends up holding what their equity cannot carry
        opposite, opposite_lots = self._opposite_holders(ci, -holder_side)
        by_margin = free * (self.activity > 0)
        by_margin = by_margin / by_margin.sum() if by_margin.sum() > 0 else self.activity
        fresh_cp = rng.choice(cfg.wallets, size=i.size, p=by_margin)
        use_opposite = (opposite >= 0) & (rng.random(i.size) < 0.5)
        counterparty = np.where(use_opposite, opposite, fresh_cp)
        fresh_cap = free[fresh_cp] * self._pick_leverage(ci) * 0.8 / (self.mark[ci] * u.lot[ci])
        close_lots = np.minimum(close_lots, np.where(use_opposite, opposite_lots, np.floor(fresh_cap)))
        close_lots = close_lots.astype(np.int64)
        holder = p.key[i] // nc
        buyer_c = np.where(holder_side < 0, holder, counterparty)
        seller_c = np.where(holder_side < 0, counterparty, holder)

        # opening trades: two wallets meet, sized by the coin's distribution and their free margin
        # feedback keeps each coin near its share of positions and of open interest (the upstream magnitudes)
        coin_of = p.key % nc
        count = np.bincount(coin_of, minlength=nc)
        oi = np.bincount(coin_of, weights=acct["notional"], minlength=nc)
        target_count = cfg.positions * self.count_share
        count_gap = np.clip(target_count / np.maximum(count, 1), 0.5, 2.0) ** 3
        oi_gap = np.clip(cfg.oi_usd * u.oi_share / np.maximum(oi, 1.0), 0.5, 2.0) ** 2
        weights = self.count_share * count_gap
        co = rng.choice(nc, size=n_open, p=weights / weights.sum())
        # both sides of an opening trade are active traders with free margin, half of them picked by how much
        # they have (rich traders place the big orders); the size is capped by what their margin carries. (A
        # few dedicated makers would meet themselves many times per coin and step; such trades are dropped.)
        by_activity = self.activity * (free > 0)
        by_activity = by_activity / by_activity.sum() if by_activity.sum() > 0 else self.activity
        rich = rng.random(n_open) < 0.5
        buyer_o = np.where(rich, rng.choice(cfg.wallets, size=n_open, p=by_margin),
                           rng.choice(cfg.wallets, size=n_open, p=by_activity))  # fmt: skip
        seller_o = np.where(rich, rng.choice(cfg.wallets, size=n_open, p=by_margin),
                            rng.choice(cfg.wallets, size=n_open, p=by_activity))  # fmt: skip
        avg_notional = cfg.oi_usd * u.oi_share / 2 / np.maximum(1.0, target_count / 2)
        # the same spread as at genesis, with the same mean: exp(mu + sigma^2 / 2) = 1
        want = avg_notional[co] * oi_gap[co] * rng.lognormal(-(SIZE_SIGMA**2) / 2, SIZE_SIGMA, n_open)
        lev = self._pick_leverage(co)
        cap = np.minimum(free[buyer_o], free[seller_o]) * lev * 0.8
        # a share of traders go all in: as much as their free margin carries at their leverage, so some new
        # positions start a few percent from liquidation, as on the real exchange
        want = np.where(rng.random(n_open) < 0.12, np.minimum(cap, want * 10), want)
        open_lots = np.floor(np.minimum(want, cap) / (self.mark[co] * u.lot[co])).astype(np.int64)

        coin = np.concatenate([ci, co])
        buyer = np.concatenate([buyer_c, buyer_o])
        seller = np.concatenate([seller_c, seller_o])
        lots = np.concatenate([close_lots, open_lots])
        keep = (lots > 0) & (buyer != seller)
        coin, buyer, seller, lots = coin[keep], buyer[keep], seller[keep], lots[keep]
        keys = np.concatenate([buyer * nc + coin, seller * nc + coin])
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        once = counts[inverse] == 1
        ok = once[: coin.size] & once[coin.size :]
        coin, buyer, seller, lots = coin[ok], buyer[ok], seller[ok], lots[ok]
        n = coin.size
        px = self.mark[coin] * (1 + rng.normal(0, 0.0002, n))
        times = np.sort(rng.integers(prev_ms + 1, time_ms, n)) if n else np.zeros(0, np.int64)
        tid = self.next_tid + np.arange(n)
        self.next_tid += n
        return self._apply(
            keys=np.concatenate([buyer * nc + coin, seller * nc + coin]),
            delta=np.concatenate([lots, -lots]),
            px=np.concatenate([px, px]),
            times=np.concatenate([times, times]),
            tid=np.concatenate([tid, tid]),
            liquidation=np.zeros(2 * n, bool),
        )

    def _opposite_holders(self, coin: np.ndarray, side: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A random wallet holding `side` in `coin` for each request and the lots it holds, or (-1, 0)."""
        p, nc = self.pos, self.u.n
        if not coin.size or not p.key.size:
            return np.full(coin.size, -1, np.int64), np.zeros(coin.size, np.int64)
        group = (p.key % nc) * 2 + (p.lots > 0)
        order = np.argsort(group, kind="stable")
        sorted_group = group[order]
        want = coin * 2 + (side > 0)
        start = np.searchsorted(sorted_group, want, side="left")
        stop = np.searchsorted(sorted_group, want, side="right")
        size = stop - start
        pick = start + np.floor(self.rng.random(coin.size) * np.maximum(size, 1)).astype(np.int64)
        found = order[np.minimum(pick, order.size - 1)]
        return np.where(size > 0, p.key[found] // nc, -1), np.where(size > 0, np.abs(p.lots[found]), 0)

    def _apply(
        self,
        keys: np.ndarray,
        delta: np.ndarray,
        px: np.ndarray,
        times: np.ndarray,
        tid: np.ndarray,
        liquidation: np.ndarray,
    ) -> pa.Table:
        """Apply fills (unique keys, signed lot deltas) to positions and cash; return the fill rows."""
        u, nc, p = self.u, self.u.n, self.pos
        if not keys.size:
            return FILLS.empty_table()
        idx = np.searchsorted(p.key, keys)
        idx_c = np.minimum(idx, max(p.key.size - 1, 0))
        present = (p.key.size > 0) & (p.key[idx_c] == keys) if p.key.size else np.zeros(keys.size, bool)
        start = np.where(present, p.lots[idx_c] if p.key.size else 0, 0)
        end = start + delta
        s0, s1, sd = np.sign(start), np.sign(end), np.sign(delta)
        c, w = keys % nc, keys // nc
        lot = u.lot[c]
        entry0 = np.where(present, p.entry[idx_c] if p.key.size else px, px)
        closing = (s0 != 0) & (sd == -s0)
        closed_lots = np.where(closing, np.minimum(np.abs(delta), np.abs(start)), 0)
        closed_pnl = s0 * closed_lots * lot * (px - entry0)
        increase = (s0 == 0) | (sd == s0)
        with np.errstate(divide="ignore", invalid="ignore"):
            averaged = (entry0 * np.abs(start) + px * np.abs(delta)) / np.abs(end)
        entry1 = np.where(s0 == 0, px, np.where(increase, averaged, np.where(s1 == s0, entry0, px)))
        notional = np.abs(delta) * lot * px
        fee = notional * FEE_RATE
        nw = self.config.wallets
        self.cash -= np.bincount(w, weights=delta * lot * px + fee, minlength=nw)
        self.volume += np.bincount(w, weights=notional, minlength=nw)

        # update continuing positions in place
        cont = present & (end != 0)
        ci = idx_c[cont]
        same_side = (s1 == s0)[cont]
        lev = p.lev[ci]
        old_margin = p.iso_margin[ci]
        grown = increase[cont] & same_side
        new_margin = np.where(
            grown,
            old_margin + notional[cont] / lev,
            np.where(
                same_side,
                old_margin * np.abs(end[cont]) / np.maximum(np.abs(start[cont]), 1),
                np.abs(end[cont]) * lot[cont] * px[cont] / lev,
            ),
        )
        p.iso_margin[ci] = np.where(p.iso[ci], new_margin, 0.0)
        p.funding[ci] = np.where(same_side, p.funding[ci], 0.0)
        p.hint_ms[ci] = np.where(same_side, p.hint_ms[ci], -1)
        p.lots[ci] = end[cont]
        p.entry[ci] = entry1[cont]

        # remove closed, insert opened
        gone = idx_c[present & (end == 0)]
        keep = np.ones(p.key.size, bool)
        keep[gone] = False
        new = ~present & (end != 0)
        nc_new = c[new]
        lev_new = self._pick_leverage(nc_new)
        iso_new = u.hip3[nc_new] | (self.rng.random(nc_new.size) < 0.25)
        added = _Positions(
            key=keys[new],
            lots=end[new],
            entry=entry1[new],
            lev=lev_new,
            iso=iso_new,
            iso_margin=np.where(iso_new, np.abs(end[new]) * lot[new] * px[new] / lev_new, 0.0),
            funding=np.zeros(nc_new.size),
            hint_ms=np.full(nc_new.size, -1, np.int64),
        )
        merged = p.take(np.nonzero(keep)[0]).concat(added)
        self.pos = merged.take(np.argsort(merged.key, kind="stable"))

        direction = _directions(start, end)
        size_start = start / u.scale[c]
        coins = pa.array(self.u.coins).take(pa.array(c))
        return pa.table(
            {
                "address": self.address.take(pa.array(w)),
                "coin": coins,
                "px": px,
                "sz": np.abs(delta) / u.scale[c],
                "side": pa.array(np.where(delta > 0, "B", "A")),
                "time": pa.array(times, type=pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
                "start_position": size_start.astype(np.float64),
                "dir": direction,
                "closed_pnl": closed_pnl,
                "fee": fee,
                "tid": tid.astype(np.int64),
                "liquidation": liquidation,
            },
            schema=FILLS,
        )

    def _liquidate(self, time_ms: int) -> pa.Table:
        p, nc = self.pos, self.u.n
        if not p.key.size:
            return FILLS.empty_table()
        a = self._account()
        w = a["w"]
        underwater = a["cross_eq"] < a["cross_mm"]
        # a wallet whose isolated margins exceed its whole account has no equity left for anything
        broke = a["cross_eq"] < 0
        hit = (np.where(p.iso, a["iso_eq"] < a["mm"], underwater[w]) | broke[w]) & (w != 0)
        if not hit.any():
            return FILLS.empty_table()
        j = np.nonzero(hit)[0]
        c = a["c"][j]
        liq_lots = p.lots[j]
        vault_delta = np.bincount(c, weights=liq_lots.astype(np.float64), minlength=nc).astype(np.int64)
        vault_coins = np.nonzero(vault_delta)[0]
        keys = np.concatenate([p.key[j], vault_coins.astype(np.int64)])  # the vault is wallet 0
        delta = np.concatenate([-liq_lots, vault_delta[vault_coins]])
        px = self.mark[np.concatenate([c, vault_coins])]
        times = np.full(keys.size, time_ms - 1, np.int64)
        tid = self.next_tid + np.arange(keys.size)
        self.next_tid += keys.size
        liquidated = np.concatenate([np.ones(j.size, bool), np.zeros(vault_coins.size, bool)])
        fills = self._apply(keys, delta, px, times, tid, liquidated)
        # bad debt: a liquidated wallet never ends below zero; the vault absorbs the rest
        av = self.cash + np.bincount(
            self.pos.key // nc,
            weights=self.pos.lots * self.u.lot[self.pos.key % nc] * self.mark[self.pos.key % nc],
            minlength=self.config.wallets,
        )
        wallets = np.unique(w[j])
        debt = np.maximum(-av[wallets], 0.0)
        self.cash[wallets] += debt
        self.cash[0] -= debt.sum()
        return fills

    def _deposits(self) -> None:
        """Deposits of a few random wallets, and withdrawals of part of the idle margin of a few others
        (picked by how much they hold idle): money arrives and leaves, so the equity in the market settles
        instead of only growing."""
        rng, nw = self.rng, self.config.wallets
        n = max(1, nw // 800)
        depositors = rng.integers(1 + self.n_makers, nw, n)
        acct = self._account()
        idle = np.maximum(acct["av"] - acct["used"] * 1.25, 0.0)
        idle[: 1 + self.n_makers] = 0.0
        weights = idle / idle.sum() if idle.sum() > 0 else None
        withdrawers = rng.choice(nw, size=n, p=weights) if weights is not None else np.zeros(0, np.int64)
        who = np.concatenate([depositors, withdrawers])
        deposited = rng.lognormal(7, 1.8, n)
        amount = np.concatenate([deposited, -idle[withdrawers] * rng.uniform(0.02, 0.1, withdrawers.size)])
        who, first = np.unique(who, return_index=True)  # one ledger move per wallet and step
        amount = amount[first]
        keep = amount != 0
        who, amount = who[keep], amount[keep]
        self.last_deposits = (who, amount)
        np.add.at(self.cash, who, amount)
        np.add.at(self.pnl_offset, who, -amount)

    # ----------------------------------------------------------------- orders

    def _new_orders(self, n: int, now_ms: int) -> dict[str, np.ndarray]:
        rng, u = self.rng, self.u
        coin = rng.choice(u.n, size=n, p=self.count_share)
        wallet = rng.choice(self.config.wallets, size=n, p=self.activity)
        wallet = np.where(wallet == 0, 1, wallet)
        is_trigger = rng.random(n) < 0.35
        buy = rng.random(n) < 0.5
        away = rng.uniform(0.001, 0.12, n)
        limit_px = self.mark[coin] * np.where(buy, 1 - away, 1 + away)
        # trigger orders sit on the other side: a sell stop below, a buy stop above
        trigger_px = np.where(is_trigger, self.mark[coin] * np.where(buy, 1 + away, 1 - away), 0.0)
        notional = self.config.oi_usd * u.oi_share[coin] / max(1, self.config.positions) * rng.lognormal(-1, 1.5, n)
        sz = np.maximum(1, np.round(notional / (self.mark[coin] * u.lot[coin]))) / u.scale[coin]
        tp = rng.random(n) < 0.5
        order_type = np.where(is_trigger, np.where(tp, "Take Profit Market", "Stop Market"), "Limit").astype(object)
        oid = self.next_oid + np.arange(n)
        self.next_oid += n
        age = rng.exponential(3 * DAY_MS, n).astype(np.int64)
        grown = np.where(rng.random(n) < 0.2, rng.uniform(1, 3, n), 1.0)  # partly filled orders
        orig_sz = np.round(sz * u.scale[coin] * grown) / u.scale[coin]
        return {
            "wallet": wallet.astype(np.int64), "coin": coin.astype(np.int64), "oid": oid.astype(np.int64),
            "buy": buy, "limit_px": np.where(is_trigger, trigger_px, limit_px), "sz": sz,
            "orig_sz": orig_sz,
            "timestamp": now_ms - age, "is_trigger": is_trigger, "trigger_px": trigger_px,
            "reduce_only": is_trigger & (rng.random(n) < 0.9), "tpsl": is_trigger & (rng.random(n) < 0.5),
            "order_type": order_type,
        }  # fmt: skip

    def _update_orders(self, time_ms: int) -> None:
        o = self.orders
        mark = self.mark[o["coin"]]
        crossed = np.where(
            o["is_trigger"],
            np.where(o["buy"], mark >= o["trigger_px"], mark <= o["trigger_px"]),
            np.where(o["buy"], mark <= o["limit_px"], mark >= o["limit_px"]),
        )
        keep = ~crossed & (self.rng.random(crossed.size) > 0.12)
        kept = {k: v[keep] for k, v in o.items()}
        missing = max(0, int(self.config.order_ratio * self.config.positions) - int(keep.sum()))
        fresh = self._new_orders(missing, time_ms)
        fresh["timestamp"] = np.sort(self.rng.integers(self.time_ms - self.config.cadence_s * 1000, time_ms, missing))
        self.orders = {k: np.concatenate([kept[k], fresh[k]]) for k in o}

    # ----------------------------------------------------------------- output

    def _state_update(self, time_ms: int, fills: pa.Table) -> StateUpdate:
        u, p = self.u, self.pos
        nc = u.n
        a = self._account()
        c, w, size = a["c"], a["w"], a["size"]
        margin_available = np.where(p.iso, a["iso_eq"] - a["mm"], (a["cross_eq"] - a["cross_mm"])[w])
        side = np.sign(size)
        liq = formulas.liquidation_price(side, size, a["mark"], margin_available, a["mmr"])
        coins = pa.array(u.coins)
        dex = pa.array(u.dex)
        positions = pa.table(
            {
                "address": self.address.take(pa.array(w)),
                "coin": coins.take(pa.array(c)),
                "dex": dex.take(pa.array(c)),
                "size": size,
                "entry_px": p.entry,
                "leverage_type": pa.array(np.where(p.iso, "isolated", "cross")),
                "leverage": p.lev,
                "liquidation_px": pa.array(liq, from_pandas=True),
                "margin_used": np.where(p.iso, a["iso_eq"], a["notional"] / p.lev),
                "funding": p.funding,
                "open_time_hint": _hint_array(p.hint_ms),
            },
            schema=POSITIONS,
        )
        long_lots = np.bincount(c, weights=np.where(p.lots > 0, p.lots, 0).astype(np.float64), minlength=nc)
        day_volume = np.sum([v for _, v in self.volume_ring], axis=0)
        markets = pa.table(
            {
                "coin": coins,
                "dex": dex,
                "mark_px": self.mark,
                "oracle_px": self.oracle,
                "mid_px": self.mid,
                "funding": self.funding_rate,
                "premium": self.premium,
                "open_interest": long_lots / u.scale,
                "day_ntl_vlm": day_volume,
                "sz_decimals": u.sz_decimals,
                "max_leverage": u.max_leverage,
            },
            schema=MARKETS,
        )
        hype_px = self.mid[self._hype]
        wallets = pa.table(
            {
                "address": self.address,
                "perp_equity": a["av"],
                "spot_equity": self.spot_usdc + self.spot_hype * hype_px,
                "staking_equity": self.staked_hype * self.oracle[self._hype],
                "vault_equity": self.vault_equity,
                "balance": self.cash,
                "pnl": a["av"] + self.pnl_offset,
                "volume": self.volume,
            },
            schema=WALLETS,
        )
        return StateUpdate(
            height=self.config.start_height + self.step_index * self.config.blocks_per_update,
            time=time_ms,
            markets=markets,
            wallets=wallets,
            positions=positions,
            orders=self.orders_table(),
            fills=fills,
            source="simulator",
        )

    def orders_table(self) -> pa.Table:
        o = self.orders
        coins = pa.array(self.u.coins).take(pa.array(o["coin"]))
        px_text = pc.cast(pa.array(np.round(o["trigger_px"], 6)), pa.string())
        condition = pc.if_else(
            pa.array(o["is_trigger"]),
            pc.binary_join_element_wise(pa.array(np.where(o["buy"], "Price above", "Price below")), px_text, " "),
            pa.scalar("N/A"),
        )
        return pa.table(
            {
                "address": self.address.take(pa.array(o["wallet"])),
                "oid": o["oid"],
                "coin": coins,
                "side": pa.array(np.where(o["buy"], "B", "A")),
                "limit_px": o["limit_px"],
                "sz": o["sz"],
                "orig_sz": o["orig_sz"],
                "timestamp": pa.array(o["timestamp"], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
                "order_type": pa.array(o["order_type"].astype(str)),
                "tif": pa.array(np.full(len(o["oid"]), "Gtc"), pa.string(), mask=o["is_trigger"]),
                "reduce_only": o["reduce_only"],
                "is_trigger": o["is_trigger"],
                "trigger_px": o["trigger_px"],
                "trigger_condition": condition,
                "is_position_tpsl": o["tpsl"],
                "cloid": pa.nulls(len(o["oid"]), pa.string()),
            },
            schema=ORDERS,
        )

    # ----------------------------------------------------------------- checkpoints

    def save(self, path: Path) -> None:
        """Write the whole simulator state to `path` (atomically: a temp file renamed into place)."""
        arrays: dict[str, Any] = {f"pos_{f}": getattr(self.pos, f) for f in _Positions.FIELDS}
        arrays |= {f"order_{k}": (v.astype(str) if v.dtype == object else v) for k, v in self.orders.items()}
        for name in _STATE_ARRAYS:
            arrays[name] = getattr(self, name)
        arrays["ring_t"] = np.array([t for t, _ in self.volume_ring], np.int64)
        arrays["ring_v"] = np.stack([v for _, v in self.volume_ring])
        meta = {
            "config": asdict(self.config), "step_index": self.step_index, "time_ms": self.time_ms,
            "next_oid": self.next_oid, "next_tid": self.next_tid, "rng": self.rng.bit_generator.state,
        }  # fmt: skip
        arrays["meta"] = np.array(json.dumps(meta))
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Simulator:
        data = np.load(path, allow_pickle=False)
        meta = json.loads(str(data["meta"]))
        sim = cls(SimConfig(**meta["config"]), genesis_ms=0)
        sim.pos = _Positions(*(data[f"pos_{f}"] for f in _Positions.FIELDS))
        sim.orders = {k[6:]: data[k] for k in data.files if k.startswith("order_")}
        sim.orders["order_type"] = sim.orders["order_type"].astype(object)
        for name in _STATE_ARRAYS:
            setattr(sim, name, data[name].copy())
        sim.volume_ring = list(zip(data["ring_t"].tolist(), list(data["ring_v"]), strict=True))
        sim.step_index, sim.time_ms = meta["step_index"], meta["time_ms"]
        sim.next_oid, sim.next_tid = meta["next_oid"], meta["next_tid"]
        sim.rng.bit_generator.state = meta["rng"]
        return sim


def _hint_array(hint_ms: np.ndarray) -> pa.Array:
    mask = hint_ms < 0
    return pa.array(hint_ms, pa.int64(), mask=mask).cast(pa.timestamp("ms", tz="UTC"))


def _directions(start: np.ndarray, end: np.ndarray) -> pa.Array:
    """Hyperliquid's fill `dir` from the position before and after the fill."""
    s0, s1 = np.sign(start), np.sign(end)
    grew = np.abs(end) > np.abs(start)
    text = np.where(
        s0 == 0,
        np.where(s1 > 0, "Open Long", "Open Short"),
        np.where(
            s1 == 0,
            np.where(s0 > 0, "Close Long", "Close Short"),
            np.where(
                s1 == s0,
                np.where(
                    s0 > 0,
                    np.where(grew, "Open Long", "Close Long"),
                    np.where(grew, "Open Short", "Close Short"),
                ),
                np.where(s0 > 0, "Long > Short", "Short > Long"),
            ),
        ),
    )
    return pa.array(text)
