"""Resting orders: placed with new positions, refreshed each step, and written as the order table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hyperscope.domain.state import ORDERS
from hyperscope.domain.time import DAY_MS
from hyperscope.sources.simulator.state import (
    MarketState,
)


class Orders(MarketState):
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
            "wallet": wallet.astype(np.int64),
            "coin": coin.astype(np.int64),
            "oid": oid.astype(np.int64),
            "buy": buy,
            "limit_px": np.where(is_trigger, trigger_px, limit_px),
            "sz": sz,
            "orig_sz": orig_sz,
            "timestamp": now_ms - age,
            "is_trigger": is_trigger,
            "trigger_px": trigger_px,
            "reduce_only": is_trigger & (rng.random(n) < 0.9),
            "tpsl": is_trigger & (rng.random(n) < 0.5),
            "order_type": order_type,
        }

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
