"""The open-positions CSV of one coin (HyperTracker's `/positions/open/coin/{coin}` file)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hyperscope.domain.state import TS

OPEN_POSITION_COLUMNS = (
    "id",
    "address",
    "coin",
    "side",
    "dex",
    "size",
    "value",
    "entryPrice",
    "unrealizedPnl",
    "funding",
    "liquidationPrice",
    "liquidationProgress",
    "crossLeverage",
    "isolatedLeverage",
    "openTime",
    "profile_totalEquity",
    "profile_perpEquity",
    "profile_countOpenPositions",
    "profile_pnl",
    "profile_balance",
    "profile_perpPnlSegmentId",
    "profile_sizeSegmentId",
)


def no_liquidation_as_zero(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Liquidation prices with 0.0 where none exists (null or NaN), as upstream writes them."""
    values = pc.fill_null(column, np.nan).to_numpy(zero_copy_only=False).astype(np.float64)
    return np.where(np.isfinite(values), values, 0.0)


def open_positions_table(rows: pa.Table) -> pa.Table:
    """The open-positions file's columns (upstream's, in upstream's order) from the store's rows."""
    cross = pc.equal(rows.column("leverage_type"), "cross").to_numpy(zero_copy_only=False)
    leverage = rows.column("leverage").to_numpy()
    open_time = pc.strftime(rows.column("open_time").cast(TS), format="%Y-%m-%dT%H:%M:%S")
    table = pa.table(
        {
            "id": rows.column("id"),
            "address": rows.column("address"),
            "coin": rows.column("coin"),
            "side": rows.column("side"),
            "dex": rows.column("dex"),
            "size": rows.column("size"),
            "value": rows.column("value"),
            "entryPrice": rows.column("entry_px"),
            "unrealizedPnl": rows.column("unrealized_pnl"),
            "funding": rows.column("funding"),
            "liquidationPrice": no_liquidation_as_zero(rows.column("liquidation_px")),
            "liquidationProgress": rows.column("liquidation_progress"),
            "crossLeverage": np.where(cross, leverage, 0.0),
            "isolatedLeverage": np.where(cross, 0.0, leverage),
            "openTime": pc.binary_join_element_wise(open_time, "Z", ""),
            "profile_totalEquity": rows.column("profile_total_equity"),
            "profile_perpEquity": rows.column("profile_perp_equity"),
            "profile_countOpenPositions": rows.column("profile_count_open_positions"),
            "profile_pnl": rows.column("profile_pnl"),
            "profile_balance": rows.column("profile_balance"),
            "profile_perpPnlSegmentId": rows.column("profile_pnl_segment"),
            "profile_sizeSegmentId": rows.column("profile_size_segment"),
        }
    )
    return table
