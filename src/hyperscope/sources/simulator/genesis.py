"""The market at its first state update: wallets, prices, open positions sized like the real one, funded
wallets and resting orders."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hyperscope.domain import formulas
from hyperscope.domain.time import DAY_MS
from hyperscope.sources.simulator.orders import Orders
from hyperscope.sources.simulator.state import (
    SIZE_SIGMA,
    Positions,
)


class Genesis(Orders):
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

    def _genesis_positions(self, now_ms: int) -> Positions:
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
        pos = Positions(
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
