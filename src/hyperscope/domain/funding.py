"""Coin Metrics-style funding-rate metrics from hourly funding rows (semantics.md section 10).

Hyperliquid settles funding hourly. For a group of markets (an asset across every dex, or one dex's asset):

    AFR_8h(t)   = sum_m OI_m(t) * 8 * r_m(t) / sum_m OI_m(t)       (USD open interest; no value when it is 0)
    AFR_P(t)    = (P / 8 h) * AFR_8h(t)                              (1d: x3, 30d: x90, 1y: x 3 * days in the
                                                                     trailing year; a linear rescale)
    CFR_L(t)    = prod over the hours i in (t - L, t] that have a value of (1 + AFR_8h(i) / 8) - 1

Missing hours are skipped, never filled. Everything is vectorised: `log1p` sums over sorted hours, with the
window's first row found by `searchsorted`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from hyperscope.domain.time import DAY_MS, HOUR_MS

PERIOD_MULTIPLIERS = {"8h": 1.0, "1d": 3.0, "30d": 90.0}  # the 1y multiplier depends on the year
ROLLING_HOURS = {"1d": 24, "7d": 168, "30d": 720}


def aggregate_8h(
    group: np.ndarray, hour: np.ndarray, rate_1h: np.ndarray, oi_usd: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(group, hour, AFR_8h) for every (group, hour) whose markets hold open interest, sorted by group and hour.

    `rate_1h` is each market's hourly rate, `oi_usd` the open interest it settles on (USD, one side)."""
    held = oi_usd > 0
    group, hour, rate_1h, oi_usd = group[held], hour[held], rate_1h[held], oi_usd[held]
    if group.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    # one integer key per (group, hour): the group in the high bits, the hour number below
    key = group.astype(np.int64) << 32 | (hour // HOUR_MS).astype(np.int64)
    unique, inverse = np.unique(key, return_inverse=True)
    weighted = np.bincount(inverse, weights=oi_usd * 8.0 * rate_1h, minlength=unique.size)
    total = np.bincount(inverse, weights=oi_usd, minlength=unique.size)
    return unique >> 32, (unique & 0xFFFFFFFF) * HOUR_MS, weighted / total


def days_in_trailing_year(hour_ms: np.ndarray) -> np.ndarray:
    """365 or 366: the days from the same date one year earlier up to each time (Feb 29 counts when inside)."""
    out = np.empty(len(hour_ms))
    cache: dict[int, float] = {}
    days = hour_ms // DAY_MS
    for i, day in enumerate(days):  # one calendar lookup per distinct day, not per position
        if day not in cache:
            d = datetime.fromtimestamp(int(day) * 86_400, UTC).date()
            try:
                before = d.replace(year=d.year - 1)
            except ValueError:  # Feb 29: a year before is Feb 28
                before = d.replace(year=d.year - 1, day=28)
            cache[int(day)] = float((d - before).days)
        out[i] = cache[int(day)]
    return out


def period_rate(afr_8h: np.ndarray, hour_ms: np.ndarray, period: str) -> np.ndarray:
    """The 8-hour aggregate rescaled linearly to `period` (8h, 1d, 30d, 1y)."""
    if period == "1y":
        return afr_8h * 3.0 * days_in_trailing_year(hour_ms)
    return afr_8h * PERIOD_MULTIPLIERS[period]


def rolling_cumulative(group: np.ndarray, hour_ms: np.ndarray, afr_8h: np.ndarray, hours: int) -> np.ndarray:
    """CFR over the trailing `hours`: the compounded hourly aggregate over the hours that have a value.

    Rows must be sorted by (group, hour); each row's window is (hour - hours h, hour] within its group."""
    logs = np.log1p(afr_8h / 8.0)
    prefix = np.concatenate([[0.0], np.cumsum(logs)])
    # the first row of each window: within the same group and after hour - hours * 1h
    order_key = group.astype(np.float64) * 1e15 + hour_ms.astype(np.float64)
    first = np.searchsorted(
        order_key, group.astype(np.float64) * 1e15 + (hour_ms - hours * HOUR_MS).astype(np.float64), side="right"
    )
    return np.expm1(prefix[np.arange(len(logs)) + 1] - prefix[first])
