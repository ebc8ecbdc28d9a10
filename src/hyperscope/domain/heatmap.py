"""The liquidation map (semantics.md section 8): 100 price bins over mark +-50%, per coin."""

from __future__ import annotations

import numpy as np

BINS = 100
LOW, HIGH = 0.5, 1.5  # the price range, as multiples of the mark
N_SEGMENTS = 17  # segment ids 1-16 index rows directly


def edges(mark: np.ndarray | float, index: np.ndarray | int) -> np.ndarray:
    """The lower price edge of bin `index` (BINS: the top edge) for a coin marked at `mark`."""
    return np.asarray(mark, np.float64) * (LOW + (HIGH - LOW) * np.asarray(index, np.float64) / BINS)


def liquidation_bins(
    coin: np.ndarray,
    marks: np.ndarray,
    liquidation_px: np.ndarray,
    value: np.ndarray,
    size_segment: np.ndarray,
    pnl_segment: np.ndarray,
) -> dict[str, np.ndarray]:
    """Every coin's non-empty bins at once: coin (index into `marks`), bin, value, count, segment.

    A position (coin index `coin`) adds its value to the bin holding its liquidation price when that price
    lies in [mark * 0.5, mark * 1.5] (the top edge belongs to the last bin); positions without one (NaN or 0)
    or on a coin without a mark add nothing. The most impacted segment is the one (either axis) with the
    largest value in the bin; ties go to the lower id. Rows come ordered by coin, then bin.
    """
    coin = np.asarray(coin, np.int64)
    mark = np.nan_to_num(np.asarray(marks, np.float64), nan=0.0)[coin]
    liq = np.nan_to_num(np.asarray(liquidation_px, np.float64), nan=0.0)
    inside = (mark > 0) & (liq > 0) & (liq >= edges(mark, 0)) & (liq <= edges(mark, BINS))
    coin, mark, liq = coin[inside], mark[inside], liq[inside]
    with np.errstate(divide="ignore", invalid="ignore"):
        guess = np.floor((liq / mark - LOW) * BINS / (HIGH - LOW))
    index = np.clip(np.nan_to_num(guess), 0, BINS - 1).astype(np.int64)
    # the guess may be one off at an edge: settle it against the edges themselves
    index -= (index > 0) & (liq < edges(mark, index))
    index += (index < BINS - 1) & (liq >= edges(mark, index + 1))
    cell = coin * BINS + index
    v = np.asarray(value, np.float64)[inside]
    present, code = np.unique(cell, return_inverse=True)
    n = len(present)
    per_bin = np.bincount(code, weights=v, minlength=n)
    count = np.bincount(code, minlength=n)
    by_segment = np.zeros(n * N_SEGMENTS)
    for segments in (size_segment, pnl_segment):
        s = np.asarray(segments, np.int64)[inside]
        by_segment += np.bincount(code * N_SEGMENTS + s, weights=v, minlength=n * N_SEGMENTS)
    most = np.argmax(by_segment.reshape(n, N_SEGMENTS), axis=1)  # the first maximum: the lower id on ties
    return {"coin": present // BINS, "bin": present % BINS, "value": per_bin, "count": count, "segment": most}


def dense(mark: float, bins: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One coin's 100 bins from its non-empty ones: start, end, value, count, segment (0 when empty)."""
    index = np.arange(BINS + 1)
    lower = edges(mark, index)
    value, count, segment = np.zeros(BINS), np.zeros(BINS, np.int64), np.zeros(BINS, np.int64)
    at = np.asarray(bins["bin"], np.int64)
    value[at], count[at], segment[at] = bins["value"], bins["count"], bins["segment"]
    return {"start": lower[:-1], "end": lower[1:], "value": value, "count": count, "segment": segment}


def liquidation_heatmap(
    mark: float, liquidation_px: np.ndarray, value: np.ndarray, size_segment: np.ndarray, pnl_segment: np.ndarray
) -> dict[str, np.ndarray]:
    """Per bin of one coin: start, end, liquidation value, position count and most impacted segment."""
    n = len(value)
    bins = liquidation_bins(np.zeros(n, np.int64), np.array([mark]), liquidation_px, value, size_segment, pnl_segment)
    return dense(mark, bins)
