"""Wallet profiles at one state update (semantics.md section 3) with their two cohorts (section 4)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hyperscope.domain.cohorts import pnl_segment, size_segment
from hyperscope.domain.state import TS, StateUpdate

PROFILE_SCHEMA = pa.schema(
    [
        ("address", pa.string()),
        ("total_equity", pa.float64()),
        ("perp_equity", pa.float64()),
        ("spot_equity", pa.float64()),
        ("staking_equity", pa.float64()),
        ("vault_equity", pa.float64()),
        ("balance", pa.float64()),
        ("pnl", pa.float64()),
        ("volume", pa.float64()),
        ("count_open_positions", pa.int32()),
        ("size_segment", pa.int8()),
        ("pnl_segment", pa.int8()),
        ("height", pa.int64()),
        ("updated_at", TS),
    ]
)


def build_profiles(update: StateUpdate, wallet_index: np.ndarray) -> pa.Table:
    """Profiles of every wallet of a validated update; `wallet_index` maps each position to its wallet row."""
    w = update.wallets
    n = w.num_rows
    counts = np.bincount(wallet_index, minlength=n).astype(np.int32)
    perp = w.column("perp_equity").to_numpy()
    total = perp + w.column("spot_equity").to_numpy() + w.column("staking_equity").to_numpy()
    total = total + w.column("vault_equity").to_numpy()
    return pa.table(
        {
            "address": w.column("address"),
            "total_equity": total,
            "perp_equity": perp,
            "spot_equity": w.column("spot_equity"),
            "staking_equity": w.column("staking_equity"),
            "vault_equity": w.column("vault_equity"),
            "balance": perp,  # semantics.md section 3: balance is the perp account value
            "pnl": w.column("pnl"),
            "volume": w.column("volume"),
            "count_open_positions": counts,
            "size_segment": size_segment(perp),
            "pnl_segment": pnl_segment(w.column("pnl").to_numpy()),
            "height": pa.array(np.full(n, update.height, np.int64)),
            "updated_at": pa.array(np.full(n, update.time, np.int64)).cast(TS),
        },
        schema=PROFILE_SCHEMA,
    )


def index_of(values: pa.Array | pa.ChunkedArray, universe: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Row of each value in `universe` (all values must be present)."""
    return pc.index_in(values, value_set=universe).to_numpy(zero_copy_only=False).astype(np.int64)


_COMPARED = (
    "total_equity",
    "perp_equity",
    "spot_equity",
    "staking_equity",
    "vault_equity",
    "balance",
    "pnl",
    "volume",
    "count_open_positions",
    "size_segment",
    "pnl_segment",
)


def changed_rows(
    current: pa.Table, previous: pa.Table | None, compared: tuple[str, ...] = _COMPARED
) -> np.ndarray | None:
    """Which profiles differ from the previous update's, or None when the two are not row-aligned.

    Sources list wallets in a stable order, so a row-by-row comparison is enough; when the address columns
    differ the caller treats every profile as changed.
    """
    if previous is None or previous.num_rows != current.num_rows:
        return None
    if not current.column("address").equals(previous.column("address")):
        return None
    changed = np.zeros(current.num_rows, bool)
    for name in compared:
        changed |= current.column(name).to_numpy() != previous.column(name).to_numpy()
    return changed
