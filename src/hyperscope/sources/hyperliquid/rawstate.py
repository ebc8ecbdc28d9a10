"""A node snapshot's state as raw columns: what the reader (reader.py) keeps of a `.rmp` file.

Scales (sources.md section 1.5): sizes are integers x 10^szDecimals, USD amounts x 1e6, oracle prices
x 10^(6 - szDecimals); leverage is `{"C": n}` (cross) or `{"I": {"l": n, "u": raw_usd}}` (isolated), and
when absent the market default applies (the entry's `M` is kept for it). An entry with no, null or zero
size only holds a leverage preference: it is not a position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from hyperscope.domain.coins import dex_of, is_hip3
from hyperscope.errors import InvalidStateUpdate
from hyperscope.sources.hyperliquid.skips import Skips

LEV_DEFAULT, LEV_CROSS, LEV_ISOLATED = 0, 1, 2
# account modes (`locus.ust`, collateral.py): default, unified, dex abstraction, portfolio margin
MODE_DEFAULT, MODE_UNIFIED, MODE_DEX_ABSTRACTION, MODE_PORTFOLIO = 0, 1, 2, 3
MODE_CODES = {b"u": MODE_UNIFIED, b"d": MODE_DEX_ABSTRACTION, b"p": MODE_PORTFOLIO}
MODE_NAMES = {
    MODE_UNIFIED: "unified",
    MODE_DEX_ABSTRACTION: "dex abstraction",
    MODE_PORTFOLIO: "portfolio margin",
    -1: "unknown",
}


class InvalidSnapshot(InvalidStateUpdate):
    """A snapshot file that does not have the expected shape; `message` names the height and the path."""


@dataclass
class Tier:
    lower_bound: float  # USD
    max_leverage: int


@dataclass
class Clearinghouse:
    """One perp dex (`locus.cls[i]`) as raw columns. Positions reference `users` rows and `coins` rows."""

    index: int
    coins: list[str]
    sz_decimals: np.ndarray  # int64 per coin
    margin_table: np.ndarray  # int64 per coin
    strict_isolated: np.ndarray  # bool per coin: marginMode says no cross margin
    margin_tables: dict[int, list[Tier]]
    oracle_raw: np.ndarray  # int64 per coin, -1 where the snapshot has no price
    user: np.ndarray  # int64 per account: index into Snapshot.addresses
    raw_usd: np.ndarray  # int64 per account: `u`, USD x 1e6
    pos_account: np.ndarray  # int64 per position: row in user/raw_usd
    pos_coin: np.ndarray  # int64 per position: row in coins
    pos_size: np.ndarray  # int64 lots
    pos_cost: np.ndarray  # int64 entry notional, USD x 1e6
    pos_lev_kind: np.ndarray  # int8: LEV_DEFAULT, LEV_CROSS, LEV_ISOLATED
    pos_leverage: np.ndarray  # int64 (0 when default)
    pos_iso_raw: np.ndarray  # int64 isolated raw USD x 1e6
    pos_funding: np.ndarray  # int64 funding paid since open, USD x 1e6 (`f.o`)
    collateral_token: int = 0  # `meta.collateralToken`: the spot token this dex settles in (0: USDC)

    @property
    def dex(self) -> str:
        """ "" for the main dex; for HIP-3 the `dex` of its `dex:coin` names."""
        if self.index == 0:
            return ""
        for coin in self.coins:
            if is_hip3(coin):
                return dex_of(coin)
        return f"dex{self.index}"

    def keep_positions(self, keep: np.ndarray) -> None:
        """Drop the positions where `keep` is False (every pos_* column alike)."""
        for name in (
            "pos_account",
            "pos_coin",
            "pos_size",
            "pos_cost",
            "pos_lev_kind",
            "pos_leverage",
            "pos_iso_raw",
            "pos_funding",
        ):
            setattr(self, name, getattr(self, name)[keep])

    def oracle_px(self) -> np.ndarray:
        px = self.oracle_raw.astype(np.float64) / 10.0 ** (6 - self.sz_decimals)
        return np.where(self.oracle_raw > 0, px, np.nan)


@dataclass
class Snapshot:
    height: int
    time_ms: int
    addresses: pa.Array | list[str]  # lower-case 0x text; rows are what the columns below index
    clearinghouses: list[Clearinghouse]
    spot_user: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    spot_token: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    spot_total: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # token wei
    vault: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # address index of the vault
    vault_user: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    vault_fraction: np.ndarray = field(default_factory=lambda: np.zeros(0))
    skipped: Skips = field(default_factory=Skips)  # what could not be used, by kind (see the module docstring)
    account_modes: dict[str, int] = field(default_factory=dict)  # `locus.ust`: accounts per mode
    mode_user: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # address rows with a mode
    mode: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))  # their MODE_* (collateral.py)
    pooled_wallets: int = 0  # wallets whose spot balances back their perps (set by build_update)
    helper_peak_bytes: int = 0  # peak memory of the helper process that read ust and scl (0: none)
