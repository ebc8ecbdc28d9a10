"""The liquidation heatmap of one coin (semantics.md section 8): 100 price bins over mark +-50%."""

from __future__ import annotations

import numpy as np

BINS = 100
LOW, HIGH = 0.5, 1.5  # the price range, as multiples of the mark
N_SEGMENTS = 17  # segment ids 1-16 index rows directly


def liquidation_heatmap(
    mark: float, liquidation_px: np.ndarray, value: np.ndarray, size_segment: np.ndarray, pnl_segment: np.ndarray
) -> dict[str, np.ndarray]:
    """Per bin: start, end, liquidation value, position count and most impacted segment (0 when empty).

    A position adds its value to the bin holding its liquidation price when that price lies in
    [mark * 0.5, mark * 1.5] (the top edge belongs to the last bin); positions without one (NaN or 0) add
    nothing. The most impacted segment is the one (either axis) with the largest value in the bin; ties go to
    the lower id.
    """
    edges = mark * (LOW + (HIGH - LOW) * np.arange(BINS + 1) / BINS)
    liq = np.nan_to_num(np.asarray(liquidation_px, np.float64), nan=0.0)
    inside = (liq >= edges[0]) & (liq <= edges[-1]) & (liq > 0)
    index = np.clip(np.searchsorted(edges, liq[inside], side="right") - 1, 0, BINS - 1)
    v = np.asarray(value, np.float64)[inside]
    per_bin = np.bincount(index, weights=v, minlength=BINS)
    count = np.bincount(index, minlength=BINS)
    by_segment = np.zeros((BINS, N_SEGMENTS))
    for segments in (size_segment, pnl_segment):
        np.add.at(by_segment, (index, np.asarray(segments, np.int64)[inside]), v)
    most = np.argmax(by_segment, axis=1)  # the first maximum: the lower id on ties
    return {
        "start": edges[:-1],
        "end": edges[1:],
        "value": per_bin,
        "count": count,
        "segment": np.where(count > 0, most, 0),
    }
