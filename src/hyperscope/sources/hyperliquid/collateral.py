"""What backs an account's perp positions when its mode (`locus.ust`) says spot balances do.

Hyperliquid accounts are in one of four modes. The default keeps each perp dex's collateral in that dex's
clearinghouse (`u`). The others pool it (real-shapes.md; public SDKs: "under a unified or portfolio margin
account, every balance and hold is reported in the spot clearinghouse state"):

- unified (`u`): the spot balance of each collateral token backs every perp dex that settles in it;
- dex abstraction (`d`): the main dex keeps its own USDC; spot balances back the HIP-3 dexes;
- portfolio margin (`p`): as unified, and the account may also borrow against other spot holdings, at a
  loan-to-value of 0.65 for HYPE and 0.5 for UBTC (the figures public SDKs use where the state carries none).

The exact rule Hyperliquid applies across several dexes is not published, so the closest documented one is
taken (docs/decisions.md): a pooled balance is shared among the wallet's accounts that hold cross positions
on the dexes it backs, in proportion to their cross notional, and counts as their cash; the borrowing
capacity of portfolio margin is shared the same way and holds positions up (their liquidation price) without
being anyone's equity. The share moves from spot to perp equity, so total equity is unchanged. Accounts with
no cross position keep their spot balances as spot. Every wallet this touches is counted (`/health`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hyperscope.sources.hyperliquid.contexts import USDC_TOKEN, MarketContexts
from hyperscope.sources.hyperliquid.snapshot import MODE_DEX_ABSTRACTION, MODE_PORTFOLIO, MODE_UNIFIED, Snapshot

LOAN_TO_VALUE = {"HYPE": 0.65, "UBTC": 0.5}
_TOKENS = 1 << 20  # token indexes are far below this: (wallet, token) pairs as one integer key


@dataclass
class Pooled:
    """Per account (rows as `build_update` concatenates them over the dexes), in its dex's collateral token:
    the pooled balance that is its cash too, and what it may borrow against; per wallet the USD value moved
    from spot to perp equity; and how many wallets this changed."""

    cash: np.ndarray
    credit: np.ndarray
    moved_usd: np.ndarray
    wallets: int


def token_price(contexts: MarketContexts, token: int) -> float | None:
    return 1.0 if token == USDC_TOKEN else contexts.token_prices.get(token)


def pooled_collateral(
    snapshot: Snapshot,
    contexts: MarketContexts,
    account_user: np.ndarray,
    account_dex: np.ndarray,
    account_price: np.ndarray,
    cross_notional: np.ndarray,
    n_wallets: int,
) -> Pooled:
    """See the module docstring. `account_dex` is each account's clearinghouse index, `account_price` the
    USD price of its collateral token, `cross_notional` its cross positions' notional."""
    n = account_user.size
    none = Pooled(np.zeros(n), np.zeros(n), np.zeros(n_wallets), 0)
    if not snapshot.mode_user.size or not n:
        return none
    mode_of = np.zeros(n_wallets, np.int8)
    mode_of[snapshot.mode_user] = snapshot.mode
    mode = mode_of[account_user]
    tokens = np.array([h.collateral_token for h in snapshot.clearinghouses], np.int64)
    account_token = tokens[account_dex]
    pooled = (mode == MODE_UNIFIED) | (mode == MODE_PORTFOLIO) | ((mode == MODE_DEX_ABSTRACTION) & (account_dex > 0))
    eligible = np.nonzero(pooled & (cross_notional > 0))[0]
    if not eligible.size:
        return none
    # each (wallet, collateral token) balance, shared by the eligible accounts it backs
    held = snapshot.spot_total > 0
    spot_users, spot_tokens = snapshot.spot_user[held], snapshot.spot_token[held]
    decimals = _decimals(contexts, spot_tokens)
    amount = snapshot.spot_total[held] / 10.0**decimals
    spot_key = spot_users * _TOKENS + spot_tokens
    key = account_user[eligible] * _TOKENS + account_token[eligible]
    groups, group = np.unique(key, return_inverse=True)
    share = cross_notional[eligible] / np.bincount(group, weights=cross_notional[eligible])[group]
    balance = _lookup(spot_key, amount, groups)
    cash = np.zeros(n)
    cash[eligible] = share * balance[group]
    moved = np.bincount(account_user[eligible], weights=cash[eligible] * account_price[eligible], minlength=n_wallets)
    # portfolio margin: borrowing capacity against the other spot holdings, shared over all its cross accounts
    credit = np.zeros(n)
    ltv = {contexts.token_index[name]: v for name, v in LOAN_TO_VALUE.items() if name in contexts.token_index}
    portfolio = eligible[mode[eligible] == MODE_PORTFOLIO]
    if ltv and portfolio.size:
        rate = (
            np.array([ltv.get(int(t), 0.0) * (contexts.token_prices.get(int(t)) or 0.0) for t in spot_tokens.tolist()])
            if spot_tokens.size
            else np.zeros(0)
        )
        capacity = np.bincount(spot_users, weights=amount * rate, minlength=n_wallets)
        users = account_user[portfolio]
        total = np.bincount(users, weights=cross_notional[portfolio], minlength=n_wallets)
        credit[portfolio] = capacity[users] * cross_notional[portfolio] / total[users] / account_price[portfolio]
    return Pooled(cash, credit, moved, int(np.unique(account_user[eligible]).size))


def _decimals(contexts: MarketContexts, tokens: np.ndarray) -> np.ndarray:
    distinct, at = np.unique(tokens, return_inverse=True)
    return np.array([contexts.token_decimals.get(int(t), 8) for t in distinct.tolist()])[at]


def _lookup(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The sum of `values` per key, at each of `wanted` (0 where a key has none)."""
    if not keys.size:
        return np.zeros(wanted.size)
    distinct, at = np.unique(keys, return_inverse=True)
    sums = np.bincount(at, weights=values)
    where = np.clip(np.searchsorted(distinct, wanted), 0, distinct.size - 1)
    return np.where(distinct[where] == wanted, sums[where], 0.0)
