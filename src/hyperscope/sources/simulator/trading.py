"""Matched trading: every size change is a fill between two wallets, so long size equals short size."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hyperscope.domain.state import FILLS
from hyperscope.sources.simulator.state import (
    FEE_RATE,
    SIZE_SIGMA,
    MarketState,
    Positions,
)


class Trading(MarketState):
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
        buyer_o = np.where(
            rich, rng.choice(cfg.wallets, size=n_open, p=by_margin), rng.choice(cfg.wallets, size=n_open, p=by_activity)
        )
        seller_o = np.where(
            rich, rng.choice(cfg.wallets, size=n_open, p=by_margin), rng.choice(cfg.wallets, size=n_open, p=by_activity)
        )
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
        added = Positions(
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
