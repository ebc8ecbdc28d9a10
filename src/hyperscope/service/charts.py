"""Series for charts: rows reduced to the chart's pixel width on the server.

A chart `width` pixels wide cannot show more than `width` distinct x positions. Rows are grouped into `width`
equal time buckets; each bucket that holds more than two rows is replaced by two points, its first time with
each field's minimum and its last time with each field's maximum, so spikes and dips survive (min/max per
pixel bucket) while the payload stays bounded whatever the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

CHART_MAX_ROWS = 200_000  # the most rows one chart reads before reducing


@dataclass(frozen=True)
class Chart:
    times: list[int]  # epoch ms, ascending
    values: dict[str, list[float | None]]  # field -> one value per time
    rows: int  # rows read before reduction


def reduce(rows: list[dict[str, Any]], fields: tuple[str, ...], width: int) -> Chart:
    """`rows` (oldest first, each with `created_at` and the fields) as at most 2 x `width` points."""
    if not rows:
        return Chart([], {f: [] for f in fields}, 0)
    times = np.fromiter((r["created_at"] for r in rows), np.int64, len(rows))
    columns = {f: np.array([r[f] if r[f] is not None else np.nan for r in rows], np.float64) for f in fields}
    width = max(1, width)
    if len(rows) <= 2 * width:
        return Chart(times.tolist(), {f: _plain(v) for f, v in columns.items()}, len(rows))
    span = int(times[-1] - times[0]) + 1
    bucket = (times - times[0]) * width // span
    starts = np.concatenate([[0], np.flatnonzero(np.diff(bucket)) + 1])
    ends = np.concatenate([starts[1:], [len(rows)]]) - 1
    out_times = np.empty(2 * len(starts), np.int64)
    out_times[0::2], out_times[1::2] = times[starts], times[ends]
    values = {}
    for f, v in columns.items():
        pair = np.empty(2 * len(starts))
        with np.errstate(invalid="ignore"):
            pair[0::2] = np.fmin.reduceat(v, starts)
            pair[1::2] = np.fmax.reduceat(v, starts)
        values[f] = _plain(pair)
    single = starts == ends  # a bucket of one row: one point, not two
    keep = np.ones(2 * len(starts), bool)
    keep[1::2] = ~single
    return Chart(
        out_times[keep].tolist(),
        {f: [x for x, k in zip(v, keep, strict=True) if k] for f, v in values.items()},
        len(rows),
    )


def _plain(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(x) else float(x) for x in values.tolist()]
