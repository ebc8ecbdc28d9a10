"""A state update from the simulated market: markets, wallets, open positions, fills and orders as Arrow."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hyperscope.domain import formulas
from hyperscope.domain.state import MARKETS, POSITIONS, WALLETS, StateUpdate
from hyperscope.sources.simulator.orders import Orders


class Output(Orders):
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


def _hint_array(hint_ms: np.ndarray) -> pa.Array:
    mask = hint_ms < 0
    return pa.array(hint_ms, pa.int64(), mask=mask).cast(pa.timestamp("ms", tz="UTC"))
