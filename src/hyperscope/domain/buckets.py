"""Position size buckets (1-10) by position value, as semantics.md section 5 defines them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SizeBucket:
    id: int
    label: str
    min_size: float | None  # inclusive
    max_size: float | None  # exclusive


SIZE_BUCKETS: tuple[SizeBucket, ...] = (
    SizeBucket(1, "<$1k", None, 1_000),
    SizeBucket(2, "$1k-$10k", 1_000, 10_000),
    SizeBucket(3, "$10k-$25k", 10_000, 25_000),
    SizeBucket(4, "$25k-$50k", 25_000, 50_000),
    SizeBucket(5, "$50k-$100k", 50_000, 100_000),
    SizeBucket(6, "$100k-$250k", 100_000, 250_000),
    SizeBucket(7, "$250k-$500k", 250_000, 500_000),
    SizeBucket(8, "$500k-$1m", 500_000, 1_000_000),
    SizeBucket(9, "$1m-$2.5m", 1_000_000, 2_500_000),
    SizeBucket(10, ">$2.5m", 2_500_000, None),
)
SIZE_BUCKETS_BY_ID = {b.id: b for b in SIZE_BUCKETS}
_EDGES = np.array([b.min_size for b in SIZE_BUCKETS[1:]], dtype=np.float64)


def size_bucket(value: np.ndarray) -> np.ndarray:
    """Bucket id (1-10) per position from its USD value."""
    return (np.searchsorted(_EDGES, value, side="right") + 1).astype(np.int8)
