"""The dashboard's views of the past: the liquidation map at any kept state update, and cohort migration."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow.compute as pc

from hyperscope.domain.cohorts import SEGMENTS, SEGMENTS_BY_ID, pnl_segment
from hyperscope.domain.time import DAY_MS
from hyperscope.service import Service
from hyperscope.store.base import LatestUpdate

SLIDER_STOPS = 2_000  # a time slider's stops: the newest kept state updates
MIGRATION_RANGES = {"1d": DAY_MS, "7d": 7 * DAY_MS, "30d": 30 * DAY_MS}


def liquidation_chart(svc: Service, name: str, height: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A coin's liquidation map at a state update, with its open orders then and the mark on one price axis:
    the chart and its non-empty bins (start, end, value, count, most impacted segment)."""
    liq = svc.liquidation_map(name, height)
    mark, starts, ends = liq["mark"], liq["start"], liq["end"]
    order_value = [0.0] * len(starts)
    orders = svc.orders_at(height, [name]) if mark else None
    if orders is not None and orders.num_rows:
        low, high = float(starts[0]), float(ends[-1])
        px = pc.fill_null(orders.column("limit_px"), np.nan).to_numpy(zero_copy_only=False).astype(np.float64)
        sz = pc.fill_null(orders.column("sz"), 0.0).to_numpy(zero_copy_only=False).astype(np.float64)
        inside = (px >= low) & (px < high)  # NaN (no price) is never inside
        index = ((px[inside] - low) / ((high - low) / len(starts))).astype(np.int64)
        per_bin = np.bincount(index, weights=np.abs(sz[inside]) * px[inside], minlength=len(starts))
        order_value = per_bin[: len(starts)].tolist()
    bins = [
        {"start": float(a), "end": float(b), "value": float(v), "count": int(c), "segment": SEGMENTS_BY_ID.get(int(g))}
        for a, b, v, c, g in zip(starts, ends, liq["value"], liq["count"], liq["segment"], strict=True)
        if c and mark
    ]
    chart = {
        "title": f"Liquidation map and open orders ({name}, mark {mark:,.4g})",
        "kind": "bars",
        "x": [(float(a) + float(b)) / 2 for a, b in zip(starts, ends, strict=True)] if mark else [],
        "series": [
            {
                "label": "liquidation value",
                "color": "#dc2626",
                "values": [float(v) for v in liq["value"]] if mark else [],
            },
            {"label": "open orders value", "color": "#2563eb", "values": order_value if mark else []},
        ],
        "mark": mark,
        "rows": len(starts) if mark else 0,
    }
    return chart, bins


def liquidations(svc: Service, update: LatestUpdate, name: str, height: int | None) -> dict[str, Any]:
    """The liquidation map of a coin as it was at any kept state update (a time slider over them)."""
    name = svc.resolve_coin(name)
    times = svc.kept_updates(SLIDER_STOPS)
    at = height if height in times else update.height
    chart, bins = liquidation_chart(svc, name, at)
    return {
        "coin": name,
        "charts": [chart],
        "bins": bins,
        "total": sum(b["value"] for b in bins),
        "mark": chart["mark"],
        **slider(times, at, update),
    }


def slider(times: dict[int, int], at: int, update: LatestUpdate) -> dict[str, Any]:
    heights = list(times)
    return {"heights": heights, "at": at, "at_time": times.get(at, update.time), "is_latest": at == update.height}


def migration(svc: Service, update: LatestUpdate, range_name: str, category: str) -> dict[str, Any]:
    """Wallets and open value moving between cohorts (PnL or size) over a window: each wallet's cohort at its
    newest hourly mark at or before the window's start (the leaderboards' baselines, which also keep the size
    cohort) against its cohort now. A wallet without a mark that old (new, or a mark made before the size
    cohort was kept) is counted apart, never as a move."""
    if category not in ("pnl", "size"):
        category = "pnl"
    span = MIGRATION_RANGES.get(range_name) or DAY_MS
    wallets = svc.wallets_with_exposure()
    base = svc.wallet_baselines(update.time - span)
    found = np.asarray(pc.fill_null(pc.index_in(wallets.column("address"), value_set=base.column("address")), -1))
    if category == "pnl":
        now_seg = pnl_segment(wallets.column("pnl").to_numpy(zero_copy_only=False))
        then_all = pnl_segment(base.column("pnl").to_numpy(zero_copy_only=False))
    else:
        now_seg = pc.fill_null(wallets.column("size_segment"), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        then_all = pc.fill_null(base.column("size_segment"), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    then_seg = np.zeros(len(now_seg), np.int64)
    known = found >= 0
    then_seg[known] = then_all[found[known]]
    known &= then_seg > 0
    value = wallets.column("open_value").to_numpy(zero_copy_only=False)
    ids = [s.id for s in SEGMENTS if s.category == category]
    moved = known & (then_seg != now_seg)
    matrix = []
    for a in ids:
        line = []
        for b in ids:
            cell = moved & (then_seg == a) & (now_seg == b)
            line.append({"wallets": int(cell.sum()), "value": float(value[cell].sum())})
        matrix.append({"segment": SEGMENTS_BY_ID[a], "cells": line})
    into = [int((moved & (now_seg == s)).sum()) for s in ids]
    out_of = [int((moved & (then_seg == s)).sum()) for s in ids]
    flow_chart = {
        "title": f"Wallets moving between {category_name(category)} cohorts: in (green) and out (red), by cohort "
        + " · ".join(f"{i + 1} {SEGMENTS_BY_ID[s].name}" for i, s in enumerate(ids)),
        "kind": "bars",
        "xlabel": "cohort",
        "x": [float(i + 1) for i in range(len(ids))],
        "series": [
            {"label": "moved in", "color": "#16a34a", "values": [float(v) for v in into]},
            {"label": "moved out", "color": "#dc2626", "values": [float(-v) for v in out_of]},
        ],
        "rows": int(moved.sum()),
    }
    return {
        "range": range_name if range_name in MIGRATION_RANGES else "1d",
        "category": category,
        "category_name": category_name(category),
        "segments": [SEGMENTS_BY_ID[s] for s in ids],
        "matrix": matrix,
        "moved": int(moved.sum()),
        "tracked": int(known.sum()),
        "new": int((~known).sum()),
        "charts": [flow_chart],
    }


def category_name(category: str) -> str:
    return "PnL" if category == "pnl" else "size"
