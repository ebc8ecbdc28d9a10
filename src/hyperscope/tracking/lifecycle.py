"""Position lifecycles, exactly as semantics.md section 1 defines them.

A position opens when size goes 0 -> non-zero, closes when it goes back to 0 or disappears, and a side
flip closes one position and opens another. Open and close times come from the fills that caused them when
the source has fills; otherwise from the source's open-time hint, else from the state update's time.
Everything here is columnar: no Python loop per position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hyperscope.domain import formulas
from hyperscope.domain.buckets import size_bucket
from hyperscope.domain.ids import position_ids
from hyperscope.domain.state import TS, StateUpdate
from hyperscope.tracking.profiles import build_profiles, index_of

OPEN_POSITION_SCHEMA = pa.schema(
    [
        ("key", pa.int64()),  # numeric lifecycle key: the store's join key, never shown to users
        ("id", pa.string()),
        ("address", pa.string()),
        ("coin", pa.string()),
        ("dex", pa.string()),
        ("side", pa.string()),
        ("size", pa.float64()),
        ("entry_px", pa.float64()),
        ("mark_px", pa.float64()),
        ("value", pa.float64()),
        ("unrealized_pnl", pa.float64()),
        ("funding", pa.float64()),
        ("liquidation_px", pa.float64()),
        ("liquidation_progress", pa.float64()),
        ("leverage_type", pa.string()),
        ("leverage", pa.float64()),
        ("margin_used", pa.float64()),
        ("open_time", TS),
        ("close_time", TS),
        ("created_at", TS),
        ("updated_at", TS),
        ("height", pa.int64()),
        ("size_segment", pa.int8()),
        ("pnl_segment", pa.int8()),
        ("size_bucket", pa.int8()),
    ]
)


@dataclass(frozen=True)
class Tracked:
    """The tracker's view of one state update."""

    open: pa.Table  # OPEN_POSITION_SCHEMA, one row per open position
    closed: pa.Table  # OPEN_POSITION_SCHEMA with close_time set: lifecycles that ended at this update
    profiles: pa.Table  # PROFILE_SCHEMA
    coin_index: np.ndarray  # per open position, row in update.markets
    wallet_index: np.ndarray  # per open position, row in update.wallets
    keys: pa.Array  # per open position, "address|coin" (the next update's previous keys)
    new: np.ndarray  # per open position, True where this update opened the lifecycle
    next_key: int  # the lifecycle key the next new lifecycle gets
    opened: int
    flipped: int


def _keys(table: pa.Table) -> pa.Array:
    keys = pc.binary_join_element_wise(table.column("address"), table.column("coin"), "|")
    return keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys


def _opens_closes(fills: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Which fills open a position (from flat, or a flip) and which close one (to flat, or a flip)."""
    start = fills.column("start_position").to_numpy()
    signed = np.where(pc.equal(fills.column("side"), "B").to_numpy(zero_copy_only=False), 1.0, -1.0)
    end = start + signed * fills.column("sz").to_numpy()
    s0, s1 = np.sign(start), np.sign(end)
    return (s1 != 0) & (s0 != s1), (s0 != 0) & (s1 != s0)


def _fill_events(fills: pa.Table | None) -> pa.Table | None:
    """Per (address, coin): time of the last fill that opened a position and of the first that closed one."""
    if fills is None or fills.num_rows == 0:
        return None
    opens, closes = _opens_closes(fills)
    time = fills.column("time").cast(pa.int64())
    events = pa.table(
        {
            "key": _keys(fills),
            "open_ms": pc.if_else(pa.array(opens), time, pa.scalar(None, pa.int64())),
            "close_ms": pc.if_else(pa.array(closes), time, pa.scalar(None, pa.int64())),
        }
    )
    grouped = events.group_by("key").aggregate([("open_ms", "max"), ("close_ms", "min")])
    return grouped.rename_columns({"open_ms_max": "open_ms", "close_ms_min": "close_ms"})


def possible_close_times(fills: pa.Table | None, now: int) -> np.ndarray:
    """Every time `track` can give a lifecycle this update ends, known before tracking (so that a store can
    prepare for their days): the closing fills' times within [0, now], and `now` itself. Distinct, sorted."""
    if fills is None or fills.num_rows == 0:
        return np.array([now], np.int64)
    times = fills.column("time").cast(pa.int64()).to_numpy()[_opens_closes(fills)[1]]
    times = times[(times >= 0) & (times <= now)]
    return np.unique(np.append(times, np.int64(now)))


def _lookup(events: pa.Table | None, keys: pa.Array, column: str) -> np.ndarray:
    """Event time (epoch ms) per key, -1 where there is none."""
    if events is None:
        return np.full(len(keys), -1, np.int64)
    idx = pc.index_in(keys, value_set=events.column("key"))
    values = pc.take(events.column(column), idx).fill_null(-1)
    return values.to_numpy(zero_copy_only=False).astype(np.int64)


def track(
    update: StateUpdate,
    previous_open: pa.Table | None,
    *,
    next_key: int = 1,
    previous_keys: pa.Array | None = None,
    profiles: pa.Table | None = None,
) -> Tracked:
    """Carry lifecycles from the previous open positions into a (validated) state update.

    New lifecycles get keys from `next_key` up. `previous_keys` ("address|coin" of `previous_open`, as the
    previous `Tracked.keys`) saves recomputing them; so do the indexes `validate` leaves on the update.
    """
    prev = previous_open if previous_open is not None else OPEN_POSITION_SCHEMA.empty_table()
    cur = update.positions
    now = update.time
    cur_keys = update.position_keys if update.position_keys is not None else _keys(cur)
    prev_keys = previous_keys if previous_keys is not None and len(previous_keys) == len(prev) else _keys(prev)
    events = _fill_events(update.fills)

    size = cur.column("size").to_numpy()
    side = np.sign(size)
    match = pc.index_in(cur_keys, value_set=prev_keys).fill_null(-1).to_numpy(zero_copy_only=False)
    match = match.astype(np.int64)
    prev_side = np.where(pc.equal(prev.column("side"), "long").to_numpy(zero_copy_only=False), 1, -1)
    closed_in_between = _lookup(events, cur_keys, "close_ms") >= 0
    has_prev = match >= 0
    same_side = np.zeros(len(match), bool)
    same_side[has_prev] = prev_side[match[has_prev]] == side[has_prev]
    continuing = has_prev & same_side & ~closed_in_between

    # lifecycle identity: carried over, or new from the opening fill / hint / this update
    last_open = _lookup(events, cur_keys, "open_ms")
    hint = cur.column("open_time_hint").cast(pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
    new_open = np.where(last_open >= 0, last_open, np.where(hint >= 0, hint, now)).astype(np.int64)
    if len(prev):
        prev_open_ms = prev.column("open_time").cast(pa.int64()).to_numpy()[np.where(continuing, match, 0)]
    else:
        prev_open_ms = np.zeros(len(cur), np.int64)
    open_ms = np.where(continuing, prev_open_ms, new_open)
    new = ~continuing
    safe_match = pa.array(np.where(continuing, match, 0))
    if len(prev):
        ids = pc.take(prev.column("id"), safe_match).combine_chunks()
    else:
        ids = pa.array(np.full(len(cur), ""), pa.string())
    if new.any():
        idx = pa.array(np.nonzero(new)[0])
        fresh = position_ids(
            pc.take(cur.column("address"), idx), pc.take(cur.column("coin"), idx), pa.array(open_ms[new])
        )
        ids = pc.replace_with_mask(ids, pa.array(new), fresh)
    created = np.full(len(cur), now, np.int64)
    if len(prev) and continuing.any():
        prev_created = prev.column("created_at").cast(pa.int64()).to_numpy()
        created[continuing] = prev_created[match[continuing]]

    coin_index = update.coin_index
    if coin_index is None:
        coin_index = index_of(cur.column("coin"), update.markets.column("coin"))
    wallet_index = update.wallet_index
    if wallet_index is None:
        wallet_index = index_of(cur.column("address"), update.wallets.column("address"))
    lifecycle_keys = np.zeros(len(cur), np.int64)
    if len(prev):
        lifecycle_keys[continuing] = prev.column("key").to_numpy()[match[continuing]]
    lifecycle_keys[new] = next_key + np.arange(int(new.sum()), dtype=np.int64)
    if profiles is None:  # (the ingestor builds them first, to write them while lifecycles are tracked)
        profiles = build_profiles(update, wallet_index)
    mark = update.markets.column("mark_px").to_numpy()[coin_index]
    entry = cur.column("entry_px").to_numpy()
    liq = cur.column("liquidation_px").fill_null(np.nan).to_numpy()
    value = formulas.position_value(size, mark)
    open_rows = pa.table(
        {
            "key": lifecycle_keys,
            "id": ids,
            "address": cur.column("address"),
            "coin": cur.column("coin"),
            "dex": cur.column("dex"),
            "side": pa.array(np.where(side > 0, "long", "short")),
            "size": np.abs(size),
            "entry_px": entry,
            "mark_px": mark,
            "value": value,
            "unrealized_pnl": formulas.unrealized_pnl(side, size, mark, entry),
            "funding": cur.column("funding"),
            "liquidation_px": cur.column("liquidation_px"),
            "liquidation_progress": formulas.liquidation_progress(side, entry, mark, liq),
            "leverage_type": cur.column("leverage_type"),
            "leverage": cur.column("leverage"),
            "margin_used": cur.column("margin_used"),
            "open_time": pa.array(open_ms, pa.int64()).cast(TS),
            "close_time": pa.nulls(len(cur), TS),
            "created_at": pa.array(created, pa.int64()).cast(TS),
            "updated_at": pa.array(np.full(len(cur), now, np.int64)).cast(TS),
            "height": pa.array(np.full(len(cur), update.height, np.int64)),
            "size_segment": profiles.column("size_segment").take(pa.array(wallet_index)),
            "pnl_segment": profiles.column("pnl_segment").take(pa.array(wallet_index)),
            "size_bucket": size_bucket(value),
        },
        schema=OPEN_POSITION_SCHEMA,
    )

    # previous lifecycles that did not continue are closed at their closing fill, else at this update
    kept = np.zeros(len(prev), bool)
    kept[match[continuing]] = True
    ended = pa.array(np.nonzero(~kept)[0])
    closed = prev.take(ended)
    close_ms = _lookup(events, pc.take(prev_keys, ended), "close_ms")
    close_ms = np.where((close_ms >= 0) & (close_ms <= now), close_ms, now)
    closed = closed.set_column(
        closed.schema.get_field_index("close_time"), "close_time", pa.array(close_ms, pa.int64()).cast(TS)
    )
    closed = closed.set_column(
        closed.schema.get_field_index("updated_at"),
        "updated_at",
        pa.array(np.full(len(closed), now, np.int64)).cast(TS),
    )
    return Tracked(
        open=open_rows,
        closed=closed,
        profiles=profiles,
        coin_index=coin_index,
        wallet_index=wallet_index,
        keys=cur_keys,
        new=new,
        next_key=next_key + int(new.sum()),
        opened=int(new.sum()),
        flipped=int((has_prev & ~same_side).sum()),
    )
