"""The simulated market's state: its configuration, its open positions and the arrays every step reads.

Everything is vectorised numpy over three kinds of arrays: wallets (index-aligned), open positions (sorted by
the key `wallet * n_coins + coin`, sizes held as signed integer lots so that long size equals short size
exactly) and resting orders. Every size change is a fill between two wallets, so the market stays balanced:
liquidated positions are taken over by the liquidator vault (wallet 0) at the mark price.

Deterministic: the same `SimConfig` gives the same sequence of state updates, whatever the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from hyperscope.domain import formulas
from hyperscope.domain.time import DAY_MS
from hyperscope.sources.simulator.universe import Universe

LEVERAGES = np.array([1, 2, 3, 5, 10, 15, 20, 25, 40, 50], dtype=np.float64)
# leverage settings as traders pick them: most between 5x and 20x (upstream's market carries about 2.6x
# open value per dollar of perp equity; see `_fund_wallets`)
LEVERAGE_WEIGHTS = np.array([2, 4, 7, 12, 16, 10, 10, 6, 5, 3], dtype=np.float64)
FEE_RATE = 0.0003
# per-wallet and per-coin arrays a checkpoint carries
_STATE_ARRAYS = (
    "cash",
    "pnl_offset",
    "volume",
    "spot_usdc",
    "spot_hype",
    "staked_hype",
    "vault_equity",
    "oracle",
    "premium",
    "funding_rate",
    "mark",
    "mid",
    "activity",
)

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
class Positions:
    key: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    lots: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    entry: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lev: np.ndarray = field(default_factory=lambda: np.zeros(0))
    iso: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    iso_margin: np.ndarray = field(default_factory=lambda: np.zeros(0))
    funding: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hint_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    FIELDS = ("key", "lots", "entry", "lev", "iso", "iso_margin", "funding", "hint_ms")

    def take(self, idx: np.ndarray) -> Positions:
        return Positions(*(getattr(self, f)[idx] for f in self.FIELDS))

    def concat(self, other: Positions) -> Positions:
        return Positions(*(np.concatenate([getattr(self, f), getattr(other, f)]) for f in self.FIELDS))


class MarketState:
    """The arrays a simulated market holds (set by `Genesis`, moved by every step) and the small reads that
    several stages share. The stages are mixins over this state: genesis, trading, market moves (prices,
    funding, liquidations, deposits), orders and output; `engine.Simulator` composes them."""

    config: SimConfig
    rng: np.random.Generator
    u: Universe
    step_index: int
    time_ms: int
    address: pa.Array
    n_makers: int
    activity: np.ndarray
    oracle: np.ndarray
    premium: np.ndarray
    funding_rate: np.ndarray
    mark: np.ndarray
    mid: np.ndarray
    count_share: np.ndarray
    pos: Positions
    cash: np.ndarray
    pnl_offset: np.ndarray
    volume: np.ndarray
    spot_usdc: np.ndarray
    spot_hype: np.ndarray
    staked_hype: np.ndarray
    vault_equity: np.ndarray
    volume_ring: list[tuple[int, np.ndarray]]
    next_oid: int
    next_tid: int
    last_deposits: tuple[np.ndarray, np.ndarray]
    orders: dict[str, np.ndarray]
    _hype: int

    @property
    def steps_per_day(self) -> int:
        return max(1, DAY_MS // (self.config.cadence_s * 1000))

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

    def _background_volume(self) -> np.ndarray:
        """Notional traded per step by flow that holds no position (market makers round-tripping)."""
        oi = self.config.oi_usd * self.u.oi_share
        return oi * BACKGROUND_TURNOVER * self.config.cadence_s / 86_400 * self.rng.lognormal(0, 0.3, self.u.n)

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
            "c": c,
            "w": w,
            "size": size,
            "mark": mark,
            "mm": mm,
            "mmr": mmr,
            "upnl": upnl,
            "av": av,
            "iso_eq": iso_eq,
            "cross_eq": cross_eq,
            "cross_mm": cross_mm,
            "used": used,
            "notional": notional,
        }

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
