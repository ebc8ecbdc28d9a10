"""The simulated market: wallets, matched trading, funding, margin, liquidations and resting orders.

Everything is vectorised numpy over three kinds of arrays: wallets (index-aligned), open positions (sorted by
the key `wallet * n_coins + coin`, sizes held as signed integer lots so that long size equals short size
exactly) and resting orders. Every size change is a fill between two wallets, so the market stays balanced:
liquidated positions are taken over by the liquidator vault (wallet 0) at the mark price.

Deterministic: the same `SimConfig` gives the same sequence of state updates, whatever the wall clock.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hyperscope.domain.state import StateUpdate
from hyperscope.sources.simulator.genesis import Genesis
from hyperscope.sources.simulator.market import Market
from hyperscope.sources.simulator.output import Output
from hyperscope.sources.simulator.state import _STATE_ARRAYS, Positions, SimConfig, preset
from hyperscope.sources.simulator.universe import build_universe

__all__ = ["SimConfig", "Simulator", "preset"]


class Simulator(Genesis, Market, Output):
    """A deterministic simulated Hyperliquid market. Call `step(time_ms)` once per state update."""

    def __init__(self, config: SimConfig, genesis_ms: int) -> None:
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.u = build_universe(self.rng, config.coins)
        self.step_index = 0
        self.time_ms = genesis_ms
        self._genesis(genesis_ms)

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

    def save(self, path: Path) -> None:
        """Write the whole simulator state to `path` (atomically: a temp file renamed into place)."""
        arrays: dict[str, Any] = {f"pos_{f}": getattr(self.pos, f) for f in Positions.FIELDS}
        arrays |= {f"order_{k}": (v.astype(str) if v.dtype == object else v) for k, v in self.orders.items()}
        for name in _STATE_ARRAYS:
            arrays[name] = getattr(self, name)
        arrays["ring_t"] = np.array([t for t, _ in self.volume_ring], np.int64)
        arrays["ring_v"] = np.stack([v for _, v in self.volume_ring])
        meta = {
            "config": asdict(self.config),
            "step_index": self.step_index,
            "time_ms": self.time_ms,
            "next_oid": self.next_oid,
            "next_tid": self.next_tid,
            "rng": self.rng.bit_generator.state,
        }
        arrays["meta"] = np.array(json.dumps(meta))
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Simulator:
        data = np.load(path, allow_pickle=False)
        meta = json.loads(str(data["meta"]))
        sim = cls(SimConfig(**meta["config"]), genesis_ms=0)
        sim.pos = Positions(*(data[f"pos_{f}"] for f in Positions.FIELDS))
        sim.orders = {k[6:]: data[k] for k in data.files if k.startswith("order_")}
        sim.orders["order_type"] = sim.orders["order_type"].astype(object)
        for name in _STATE_ARRAYS:
            setattr(sim, name, data[name].copy())
        sim.volume_ring = list(zip(data["ring_t"].tolist(), list(data["ring_v"]), strict=True))
        sim.step_index, sim.time_ms = meta["step_index"], meta["time_ms"]
        sim.next_oid, sim.next_tid = meta["next_oid"], meta["next_tid"]
        sim.rng.bit_generator.state = meta["rng"]
        return sim
