"""Hyperliquid's margin math over whole books of positions (sources.md section 4), vectorised.

Inputs are what a clearinghouse holds per account (one wallet on one dex): its cross cash `raw_usd`
(`totalRawUsd` of the cross summary) and per position the signed size, entry price, leverage, whether it is
isolated and, if so, its own `raw_usd` (the isolated margin is `raw_usd + size * mark`). Marks come from the
market. Out come the values the Info API's `clearinghouseState` reports: position value, unrealized PnL,
margin used, liquidation price, and per account the account value.

Maintenance margin follows the market's margin tiers: `MM = notional * mmr(tier) - deduction(tier)` with
`mmr = 1 / (2 * max_leverage)` and deductions that make MM continuous across tiers. The liquidation price
solves "equity = MM" holding every other position's mark fixed; when the price it finds falls in another
tier than the current notional, it is solved once more with that tier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hyperscope.domain import formulas


@dataclass(frozen=True)
class MarginTable:
    """Tiers of one margin table: `lower_bounds` (USD notional, ascending, first 0) and their max leverage."""

    lower_bounds: np.ndarray
    max_leverage: np.ndarray

    @classmethod
    def single(cls, max_leverage: float) -> MarginTable:
        return cls(np.zeros(1), np.array([float(max_leverage)]))

    @property
    def rates(self) -> np.ndarray:
        return formulas.maintenance_rate(self.max_leverage)

    @property
    def deductions(self) -> np.ndarray:
        rates = self.rates
        steps = self.lower_bounds[1:] * np.diff(rates)
        return np.concatenate([[0.0], np.cumsum(steps)])


def maintenance(
    notional: np.ndarray, table: np.ndarray, tables: dict[int, MarginTable]
) -> tuple[np.ndarray, np.ndarray]:
    """Per position, the maintenance rate and deduction of its tier at `notional` (a loop over tables)."""
    rate = np.empty(notional.size)
    deduction = np.empty(notional.size)
    for table_id in np.unique(table):
        rows = np.nonzero(table == table_id)[0]
        t = tables[int(table_id)]
        tier = np.searchsorted(t.lower_bounds, notional[rows], side="right") - 1
        tier = np.clip(tier, 0, t.lower_bounds.size - 1)
        rate[rows] = t.rates[tier]
        deduction[rows] = t.deductions[tier]
    return rate, deduction


@dataclass(frozen=True)
class Book:
    """Positions with their account (index into the accounts' arrays) and market inputs."""

    account: np.ndarray  # int64, per position
    size: np.ndarray  # signed coin units
    entry: np.ndarray
    mark: np.ndarray
    leverage: np.ndarray
    isolated: np.ndarray  # bool
    isolated_raw_usd: np.ndarray  # 0 for cross positions
    table: np.ndarray  # margin table id per position
    raw_usd: np.ndarray  # per account: cross cash
    # per account: what the account may borrow against (portfolio margin): it holds cross positions up
    # like cash, but is not the account's value (None: nothing)
    credit: np.ndarray | None = None


@dataclass(frozen=True)
class Margins:
    value: np.ndarray
    unrealized_pnl: np.ndarray
    margin_used: np.ndarray
    liquidation_px: np.ndarray  # NaN where there is none
    account_value: np.ndarray  # per account: raw_usd + isolated raw_usd + sum(size * mark)


def margins(book: Book, tables: dict[int, MarginTable]) -> Margins:
    n_accounts = book.raw_usd.size
    a, size, mark, iso = book.account, book.size, book.mark, book.isolated
    side = np.sign(size)
    notional = formulas.position_value(size, mark)
    upnl = formulas.unrealized_pnl(side, size, mark, book.entry)
    rate, deduction = maintenance(notional, book.table, tables)
    mm = notional * rate - deduction
    exposure = size * mark
    cross_equity = book.raw_usd + np.bincount(a, weights=np.where(iso, 0.0, exposure), minlength=n_accounts)
    if book.credit is not None:
        cross_equity = cross_equity + book.credit
    cross_mm = np.bincount(a, weights=np.where(iso, 0.0, mm), minlength=n_accounts)
    iso_equity = np.where(iso, book.isolated_raw_usd + exposure, 0.0)
    equity = np.where(iso, iso_equity, cross_equity[a])
    others_mm = np.where(iso, 0.0, cross_mm[a] - mm)  # the maintenance of the account's other cross positions
    liq = formulas.liquidation_price(side, size, mark, equity - others_mm - mm, rate)
    # solved in the tier of the liquidation price when that is another one
    at_liq = np.abs(size) * np.nan_to_num(liq)
    rate2, deduction2 = maintenance(at_liq, book.table, tables)
    moved = np.isfinite(liq) & (rate2 != rate)
    if moved.any():
        mm2 = notional * rate2 - deduction2
        liq2 = formulas.liquidation_price(side, size, mark, equity - others_mm - mm2, rate2)
        liq = np.where(moved, liq2, liq)
    margin_used = np.where(iso, iso_equity, notional / book.leverage)
    account_value = (
        book.raw_usd
        + np.bincount(a, weights=np.where(iso, book.isolated_raw_usd, 0.0), minlength=n_accounts)
        + np.bincount(a, weights=exposure, minlength=n_accounts)
    )
    return Margins(notional, upnl, margin_used, liq, account_value)
