"""Market moves between trades: prices, funding, liquidations (taken over by the liquidator vault at the
mark) and deposits."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hyperscope.domain import formulas
from hyperscope.domain.state import FILLS
from hyperscope.sources.simulator.trading import Trading


class Market(Trading):
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
