"""Wallet cohorts (segments 1-16), as semantics.md section 4 defines them.

Every wallet has one size cohort (by perp equity) and one PnL cohort (by all-time perp PnL). Lower edges
are inclusive; on the negative PnL side the edge nearer zero is inclusive, so PnL 0 is Exit Liquidity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Category = Literal["size", "pnl"]


@dataclass(frozen=True)
class Segment:
    id: int
    name: str
    category: Category
    low: float | None  # None = unbounded
    high: float | None
    emoji: str

    def criteria(self) -> dict[str, float | None]:
        """The `criteria` object of `GET /segments`: minPerpEquity/maxPerpEquity or minPnl/maxPnl."""
        key = "PerpEquity" if self.category == "size" else "Pnl"
        return {f"min{key}": self.low, f"max{key}": self.high}


SEGMENTS: tuple[Segment, ...] = (
    Segment(16, "Shrimp", "size", 0, 250, "🦐"),
    Segment(1, "Fish", "size", 250, 10_000, "🐟"),
    Segment(2, "Dolphin", "size", 10_000, 50_000, "🐬"),
    Segment(3, "Apex Predator", "size", 50_000, 100_000, "🦈"),
    Segment(4, "Small Whale", "size", 100_000, 500_000, "🐋"),
    Segment(5, "Whale", "size", 500_000, 1_000_000, "🐳"),
    Segment(6, "Tidal Whale", "size", 1_000_000, 5_000_000, "🌊"),
    Segment(7, "Leviathan", "size", 5_000_000, None, "🐉"),
    Segment(8, "Money Printer", "pnl", 1_000_000, None, "💰"),
    Segment(9, "Smart Money", "pnl", 100_000, 1_000_000, "📈"),
    Segment(10, "Grinder", "pnl", 10_000, 100_000, "📊"),
    Segment(11, "Humble Earner", "pnl", 0, 10_000, "🙏"),
    Segment(12, "Exit Liquidity", "pnl", -10_000, 0, "🤡"),
    Segment(13, "Semi-Rekt", "pnl", -100_000, -10_000, "🩹"),
    Segment(14, "Full Rekt", "pnl", -1_000_000, -100_000, "💀"),
    Segment(15, "Giga-Rekt", "pnl", None, -1_000_000, "⚰️"),
)
SEGMENT_IDS: tuple[int, ...] = tuple(sorted(s.id for s in SEGMENTS))
SEGMENTS_BY_ID: dict[int, Segment] = {s.id: s for s in SEGMENTS}

_SIZE_EDGES = np.array([250, 10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000], dtype=np.float64)
_SIZE_IDS = np.array([16, 1, 2, 3, 4, 5, 6, 7], dtype=np.int8)
_PNL_POS_EDGES = np.array([10_000, 100_000, 1_000_000], dtype=np.float64)
_PNL_POS_IDS = np.array([11, 10, 9, 8], dtype=np.int8)
_PNL_NEG_EDGES = np.array([-1_000_000, -100_000, -10_000], dtype=np.float64)
_PNL_NEG_IDS = np.array([15, 14, 13, 12], dtype=np.int8)


def size_segment(perp_equity: np.ndarray) -> np.ndarray:
    """Size cohort id per wallet from perp equity (negative equity counts as Shrimp)."""
    return _SIZE_IDS[np.searchsorted(_SIZE_EDGES, perp_equity, side="right")]


def pnl_segment(pnl: np.ndarray) -> np.ndarray:
    """PnL cohort id per wallet from all-time perp PnL."""
    pnl = np.asarray(pnl, dtype=np.float64)
    positive = _PNL_POS_IDS[np.searchsorted(_PNL_POS_EDGES, pnl, side="right")]
    negative = _PNL_NEG_IDS[np.searchsorted(_PNL_NEG_EDGES, pnl, side="left")]
    return np.where(pnl > 0, positive, negative).astype(np.int8)
