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
    raw = span_keys(orders)
    by_key = np.argsort(raw, kind="stable")
    ordered = raw[by_key]
    first = np.ones(len(ordered), bool)
    first[1:] = ordered[1:] != ordered[:-1]  # a repeated order version is stored once (its first row)
    keys, rows = ordered[first], by_key[first]
    before = np.zeros(0, np.int64) if previous is None else np.asarray(previous, np.int64)
    if len(before) > 1 and (before[1:] < before[:-1]).any():
        before = np.sort(before)
    new = ~_among(keys, before)
    ended = before[~_among(before, keys)]
    opened = orders.take(pa.array(rows[new])).append_column("span", pa.array(keys[new], pa.int64()))
    return OrderChanges(opened=opened, ended=ended, keys=keys)


def _among(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Whether each value is in `sorted_set` (ascending): a binary search, no sort of either side."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), bool)
    at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[at] == values
