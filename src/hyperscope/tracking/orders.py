"""Open orders as spans: which order versions a state update opened and which it ended (vectorised).

An order version is an oid with its size and prices; a partial fill or a modification ends one version and
opens another. Versions are identified by a 64-bit hash of those four numbers (`span_keys`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

_MIX = (
    np.uint64(0x9E3779B97F4A7C15),
    np.uint64(0xC2B2AE3D27D4EB4F),
    np.uint64(0x165667B19E3779F9),
    np.uint64(0x27D4EB2F165667C5),
)


def _bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)


def span_keys(orders: pa.Table) -> np.ndarray:
    """A 64-bit key per order version (oid, sz, limit_px, trigger_px), as int64 for storage."""
    parts = (
        orders.column("oid").to_numpy().astype(np.uint64),
        _bits(orders.column("sz").to_numpy()),
        _bits(orders.column("limit_px").to_numpy()),
        _bits(orders.column("trigger_px").to_numpy()),
    )
    key = np.zeros(orders.num_rows, np.uint64)
    with np.errstate(over="ignore"):
        for part, mix in zip(parts, _MIX, strict=True):
            key = (key ^ (part * mix)) * np.uint64(0x100000001B3)
            key ^= key >> np.uint64(29)
    return key.view(np.int64)


@dataclass(frozen=True)
class OrderChanges:
    opened: pa.Table  # the orders of this update that were not open before, with their `span` key
    ended: np.ndarray  # span keys open before that this update no longer holds
    keys: np.ndarray  # span keys open after this update


def order_changes(orders: pa.Table, previous: np.ndarray | None) -> OrderChanges:
    """Spans opened and ended by an update's full order table, given the span keys open before it."""
    keys = span_keys(orders)
    keys, first = np.unique(keys, return_index=True)  # a repeated order version is stored once
    orders = orders.take(pa.array(first))
    before = previous if previous is not None else np.zeros(0, np.int64)
    new = ~np.isin(keys, before, assume_unique=True)
    ended = before[~np.isin(before, keys, assume_unique=True)]
    opened = orders.filter(pa.array(new)).append_column("span", pa.array(keys[new], pa.int64()))
    return OrderChanges(opened=opened, ended=ended, keys=keys)
