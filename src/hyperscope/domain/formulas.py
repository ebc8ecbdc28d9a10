"""Per-position and per-group formulas (semantics.md sections 2 and 6; sources.md "Margin math").

All functions are vectorised over numpy arrays. `side` is +1 for longs and -1 for shorts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

CLOSE_TO_LIQUIDATION_PROGRESS = 75.0


def position_value(size: np.ndarray, mark: np.ndarray) -> np.ndarray:
    """`value = size * mark` with `size` unsigned."""
    return np.abs(size) * mark


def unrealized_pnl(side: np.ndarray, size: np.ndarray, mark: np.ndarray, entry: np.ndarray) -> np.ndarray:
    """`side * (mark - entry) * |size|`."""
    return side * (mark - entry) * np.abs(size)


def liquidation_progress(side: np.ndarray, entry: np.ndarray, mark: np.ndarray, liquidation: np.ndarray) -> np.ndarray:
    """Percent of the entry->liquidation distance already travelled, clamped to [0, 100].

    Long: 100*(entry-mark)/(entry-liq); short: 100*(mark-entry)/(liq-entry), as written, whichever side of
    the entry the liquidation price lies: one between the entry and the mark (a cross account whose other
    positions ate its margin) gives more than 100, so 100. With no liquidation price (NaN) a long uses liq = 0,
    as upstream's sample row does (entry 78350, mark 67819 -> 13.44097), and a short gives 0; so does entry
    equal to the liquidation price.
    """
    liquidation = np.where(np.isnan(liquidation) & (side > 0), 0.0, liquidation)
    distance = side * (entry - liquidation)
    travelled = side * (entry - mark)
    with np.errstate(divide="ignore", invalid="ignore"):
        progress = 100.0 * travelled / distance
    progress = np.where(np.isfinite(progress), progress, 0.0)
    return np.clip(progress, 0.0, 100.0)


def maintenance_rate(max_leverage: np.ndarray) -> np.ndarray:
    """Maintenance margin rate of a single-tier market: half the initial margin at max leverage."""
    return 1.0 / (2.0 * np.asarray(max_leverage, dtype=np.float64))


def liquidation_price(
    side: np.ndarray, size: np.ndarray, mark: np.ndarray, margin_available: np.ndarray, mmr: np.ndarray
) -> np.ndarray:
    """Hyperliquid's liquidation price: `mark - side * margin_available / |size| / (1 - mmr * side)`.

    `margin_available` is account value (cross) or isolated margin (isolated) minus the maintenance
    margin required. Returns NaN where no liquidation price exists (a long whose price would be <= 0).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        liq = mark - side * margin_available / np.abs(size) / (1.0 - mmr * side)
    return np.where(np.isfinite(liq) & (liq > 0), liq, np.nan)


def coin_values(
    coin: np.ndarray, size: np.ndarray, is_long: np.ndarray, mark: np.ndarray, sz_decimals: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per coin, (value of all positions, value of longs), summed in whole lots then priced once.

    Sizes are whole multiples of the coin's lot (10**-szDecimals), so summing lots is exact and a coin whose
    long size equals its short size gets a long value exactly half its total (not equal up to rounding, as
    summing `size * mark` per position in float would give). `coin` indexes `mark` and `sz_decimals`.
    """
    scale = 10.0 ** np.asarray(sz_decimals, np.float64)
    lots = np.rint(np.abs(size) * scale[coin])
    n = len(mark)
    all_lots = np.bincount(coin, weights=lots, minlength=n)
    long_lots = np.bincount(coin, weights=lots * is_long, minlength=n)
    return all_lots * mark / scale, long_lots * mark / scale


def long_fraction(value_long: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Per-coin/cohort/bucket `bias`: long value over total value; NaN where value is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(value > 0, value_long / value, np.nan)


def perp_bias(value_long: np.ndarray, value_short: np.ndarray, active_equity: np.ndarray) -> np.ndarray:
    """Cohort `perpBias`: (long - short) / active perp equity; NaN where the equity is not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(active_equity > 0, (value_long - value_short) / active_equity, np.nan)


def exposure_ratio(value: np.ndarray, active_equity: np.ndarray) -> np.ndarray:
    """Cohort `exposureRatio`: open value / active perp equity; NaN where the equity is not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(active_equity > 0, value / active_equity, np.nan)


def scalar(formula: Callable[..., np.ndarray], *values: float) -> float | None:
    """One value of a vectorised formula, as the API serves it: NaN (no defined value) becomes None."""
    result = float(formula(*(np.array([v], dtype=np.float64) for v in values))[0])
    return None if np.isnan(result) else result


def hourly_funding_rate(premium: np.ndarray, interest_8h: float = 0.0001) -> np.ndarray:
    """Hourly funding from the premium: (premium + clamp(interest - premium, +-0.05%)) / 8, capped 4%/h."""
    rate_8h = premium + np.clip(interest_8h - premium, -0.0005, 0.0005)
    return np.clip(rate_8h / 8.0, -0.04, 0.04)
