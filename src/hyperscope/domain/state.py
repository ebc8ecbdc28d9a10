"""The state-update contract: one block height and time with fixed columnar (Arrow) tables.

Every source (the simulator, Hyperliquid node and API readers) produces a `StateUpdate`; `validate`
checks it on the way in and returns a copy with every table cast to its canonical schema. A state update
that breaks an invariant raises `InvalidStateUpdate` naming the first broken rule; nothing of it is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hyperscope.domain.time import DAY_MS
from hyperscope.domain.timefmt import iso_ms
from hyperscope.errors import InvalidStateUpdate

TS = pa.timestamp("ms", tz="UTC")

MARKETS = pa.schema(
    [
        pa.field("coin", pa.string(), nullable=False),
        pa.field("dex", pa.string(), nullable=False),
        pa.field("mark_px", pa.float64(), nullable=False),
        pa.field("oracle_px", pa.float64(), nullable=False),
        pa.field("mid_px", pa.float64()),
        pa.field("funding", pa.float64(), nullable=False),  # hourly rate
        pa.field("premium", pa.float64()),
        pa.field("open_interest", pa.float64(), nullable=False),  # coin units, one side
        pa.field("day_ntl_vlm", pa.float64(), nullable=False),
        pa.field("sz_decimals", pa.int32(), nullable=False),
        pa.field("max_leverage", pa.int32(), nullable=False),
    ]
)

WALLETS = pa.schema(
    [
        pa.field("address", pa.string(), nullable=False),
        pa.field("perp_equity", pa.float64(), nullable=False),
        pa.field("spot_equity", pa.float64(), nullable=False),
        pa.field("staking_equity", pa.float64(), nullable=False),
        pa.field("vault_equity", pa.float64(), nullable=False),
        pa.field("balance", pa.float64(), nullable=False),  # totalRawUsd; not served (balance = perp equity)
        pa.field("pnl", pa.float64(), nullable=False),  # all-time perp PnL
        pa.field("volume", pa.float64(), nullable=False),  # all-time perp volume
    ]
)

POSITIONS = pa.schema(
    [
        pa.field("address", pa.string(), nullable=False),
        pa.field("coin", pa.string(), nullable=False),
        pa.field("dex", pa.string(), nullable=False),
        pa.field("size", pa.float64(), nullable=False),  # signed: > 0 long, < 0 short
        pa.field("entry_px", pa.float64(), nullable=False),
        pa.field("leverage_type", pa.string(), nullable=False),  # "cross" | "isolated"
        pa.field("leverage", pa.float64(), nullable=False),
        pa.field("liquidation_px", pa.float64()),  # null: no liquidation price
        pa.field("margin_used", pa.float64(), nullable=False),
        pa.field("funding", pa.float64(), nullable=False),  # received since open, USD
        pa.field("open_time_hint", TS),
    ]
)

ORDERS = pa.schema(
    [
        pa.field("address", pa.string(), nullable=False),
        pa.field("oid", pa.int64(), nullable=False),
        pa.field("coin", pa.string(), nullable=False),
        pa.field("side", pa.string(), nullable=False),  # "B" | "A"
        pa.field("limit_px", pa.float64(), nullable=False),
        pa.field("sz", pa.float64(), nullable=False),
        pa.field("orig_sz", pa.float64(), nullable=False),
        pa.field("timestamp", TS, nullable=False),
        pa.field("order_type", pa.string(), nullable=False),
        pa.field("tif", pa.string()),
        pa.field("reduce_only", pa.bool_(), nullable=False),
        pa.field("is_trigger", pa.bool_(), nullable=False),
        pa.field("trigger_px", pa.float64(), nullable=False),
        pa.field("trigger_condition", pa.string(), nullable=False),
        pa.field("is_position_tpsl", pa.bool_(), nullable=False),
        pa.field("cloid", pa.string()),
    ]
)

FILLS = pa.schema(
    [
        pa.field("address", pa.string(), nullable=False),
        pa.field("coin", pa.string(), nullable=False),
        pa.field("px", pa.float64(), nullable=False),
        pa.field("sz", pa.float64(), nullable=False),
        pa.field("side", pa.string(), nullable=False),  # "B" | "A"
        pa.field("time", TS, nullable=False),
        pa.field("start_position", pa.float64(), nullable=False),
        pa.field("dir", pa.string(), nullable=False),
        pa.field("closed_pnl", pa.float64(), nullable=False),
        pa.field("fee", pa.float64(), nullable=False),
        pa.field("tid", pa.int64(), nullable=False),
        pa.field("liquidation", pa.bool_(), nullable=False),
    ]
)


@dataclass(frozen=True)
class StateUpdate:
    """One full snapshot of all wallets at one block height. `time` is epoch milliseconds (UTC)."""

    height: int
    time: int
    markets: pa.Table
    wallets: pa.Table
    positions: pa.Table
    orders: pa.Table | None = None
    fills: pa.Table | None = None  # fills since the previous state update, when the source has them
    source: str = "unknown"
    market_data: str = ""  # where its marks came from: recorded, fetched at its time, or its own oracle prices
    # True when the update covers only some wallets (a watch list): a coin's long and short sizes need not
    # match, so that invariant is not checked.
    partial: bool = False
    # Set by `validate` so that tracking does not compute them again: per position, its row in markets
    # and in wallets, and its "address|coin" key.
    coin_index: np.ndarray | None = field(default=None, repr=False, compare=False)
    wallet_index: np.ndarray | None = field(default=None, repr=False, compare=False)
    position_keys: pa.Array | None = field(default=None, repr=False, compare=False)


def empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


def _conform(name: str, table: pa.Table, schema: pa.Schema) -> pa.Table:
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise InvalidStateUpdate(f"{name}: missing column(s) {', '.join(missing)}")
    columns = []
    for spec in schema:
        column = table.column(spec.name)
        try:
            column = column.cast(spec.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise InvalidStateUpdate(f"{name}.{spec.name}: cannot read as {spec.type}: {e}") from e
        if not spec.nullable and column.null_count:
            raise InvalidStateUpdate(f"{name}.{spec.name}: {column.null_count} null value(s)")
        columns.append(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column)
    return pa.Table.from_arrays(columns, schema=schema)


def _np(table: pa.Table, column: str) -> np.ndarray:
    return table.column(column).to_numpy()


def _finite(name: str, table: pa.Table, columns: tuple[str, ...], positive: bool = False) -> None:
    for column in columns:
        values = table.column(column).fill_null(1.0).to_numpy()
        bad = ~np.isfinite(values) | ((values <= 0) if positive else False)
        if bad.any():
            row = int(np.argmax(bad))
            kind = "positive finite number" if positive else "finite number"
            raise InvalidStateUpdate(f"{name}.{column}: row {row} is {values[row]!r}, expected a {kind}")


def _unique(name: str, keys: pa.Array, what: str) -> None:
    if len(pc.unique(keys)) != len(keys):
        counts = pc.value_counts(keys)
        dup = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"]
        raise InvalidStateUpdate(f"{name}: duplicate {what} {dup}")


# fills are those since the previous state update: one stamped more than a day after the update, or over 400 days
# before it, is not a fill of it (a store would otherwise make room for every day in between)
FILL_LEAD_MS = DAY_MS
FILL_HISTORY_MS = 400 * DAY_MS


def fill_window(time: int) -> tuple[int, int]:
    """The times [first, last] a fill of something stamped at `time` (a state update, a block) may carry."""
    return time - FILL_HISTORY_MS, time + FILL_LEAD_MS


def _fill_times(fills: pa.Table, time: int) -> None:
    times = fills.column("time").cast(pa.int64()).to_numpy()
    first, last = fill_window(time)
    outside = (times < first) | (times > last)
    if outside.any():
        at = int(times[outside][0])
        raise InvalidStateUpdate(
            f"fills: {int(outside.sum())} fill(s) stamped outside [update time - 400 days, update time + 1 day], "
            f"the first at {iso_ms(at) if 0 <= at < 253_402_300_800_000 else at} (update at {iso_ms(time)})"
        )


def validate(update: StateUpdate) -> StateUpdate:
    """Check every invariant of the contract and return the update with canonical schemas.

    Raises InvalidStateUpdate on: missing/ill-typed columns, nulls in required columns, non-finite or
    non-positive prices, malformed or duplicate addresses, duplicate coins, positions on unknown coins or
    wallets, zero sizes, duplicate (address, coin), unknown leverage types, and long size != short size for
    a coin (beyond half a lot, i.e. more than float rounding).
    """
    if update.height <= 0:
        raise InvalidStateUpdate(f"height must be positive, got {update.height}")
    markets = _conform("markets", update.markets, MARKETS)
    wallets = _conform("wallets", update.wallets, WALLETS)
    positions = _conform("positions", update.positions, POSITIONS)
    orders = _conform("orders", update.orders, ORDERS) if update.orders is not None else None
    fills = _conform("fills", update.fills, FILLS) if update.fills is not None else None

    if markets.num_rows == 0:
        raise InvalidStateUpdate("markets: no markets")
    _unique("markets", markets.column("coin").combine_chunks(), "coin")
    _finite("markets", markets, ("mark_px", "oracle_px", "mid_px"), positive=True)
    _finite("markets", markets, ("funding", "premium", "open_interest", "day_ntl_vlm"))

    addresses = _addresses("wallets.address", wallets.column("address"))
    wallets = wallets.set_column(0, "address", addresses)
    _finite("wallets", wallets, tuple(f.name for f in WALLETS if f.name != "address"))

    position_addresses = _lowered(positions.column("address"))  # valid iff found among the wallets
    positions = positions.set_column(0, "address", position_addresses)
    wallet_index = _wallet_rows(addresses, position_addresses)
    coin_index, keys = _check_positions(positions, markets, balanced=not update.partial)
    if fills is not None:
        fills = fills.set_column(0, "address", pc.utf8_lower(fills.column("address")))
        unknown = pc.invert(pc.is_in(fills.column("coin"), value_set=markets.column("coin")))
        if pc.any(unknown).as_py():
            raise InvalidStateUpdate("fills: fill on a coin that is not in markets")
        _fill_times(fills, update.time)
    if orders is not None:
        orders = orders.set_column(0, "address", pc.utf8_lower(orders.column("address")))
    return replace(
        update,
        markets=markets,
        wallets=wallets,
        positions=positions,
        orders=orders,
        fills=fills,
        coin_index=coin_index,
        wallet_index=wallet_index,
        position_keys=keys,
    )


def _in_range(data: np.ndarray, low: str, high: str) -> np.ndarray:
    """Whether each byte lies in [low, high]: one wrapping subtraction and one comparison (no lookup table)."""
    return (data - np.uint8(ord(low))) <= np.uint8(ord(high) - ord(low))


def _address_bytes(addresses: pa.Array) -> np.ndarray:
    """The (n, 42) byte matrix of an array whose strings are all 42 bytes long."""
    offsets = np.frombuffer(addresses.buffers()[1], np.int32)[addresses.offset : addresses.offset + len(addresses) + 1]
    data = np.frombuffer(addresses.buffers()[2], np.uint8) if len(addresses) else np.zeros(0, np.uint8)
    return data[offsets[0] : offsets[-1]].reshape(len(addresses), 42)


def _lowered(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Addresses in lower case (checksummed or upper-case input is accepted); a no-op when already lower.

    Looks at the raw bytes when every string is 42 bytes long (Arrow's Unicode-aware case test is slower
    than lower-casing itself); anything else is simply lower-cased.
    """
    addresses = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not len(addresses):
        return addresses
    lengths = pc.binary_length(addresses).to_numpy(zero_copy_only=False)
    if (lengths != 42).any() or _in_range(_address_bytes(addresses), "A", "Z").any():
        addresses = pc.utf8_lower(addresses)
    return addresses


def _addresses(name: str, column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Wallet addresses checked as 0x + 40 hex digits, lower-cased (a byte table, no regex)."""
    addresses = _lowered(column)
    lengths = pc.binary_length(addresses).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths != 42).any():
        row = int(np.argmax(lengths != 42))
        raise InvalidStateUpdate(f"{name}: row {row} is {addresses[row]}, expected 0x + 40 hex digits")
    raw = _address_bytes(addresses)
    digits = raw[:, 2:]
    hexadecimal = _in_range(digits, "0", "9") | _in_range(digits, "a", "f")
    if not ((raw[:, 0] == ord("0")).all() and (raw[:, 1] == ord("x")).all() and hexadecimal.all()):
        ok = (raw[:, 0] == ord("0")) & (raw[:, 1] == ord("x")) & hexadecimal.all(axis=1)
        row = int(np.argmax(~ok))
        raise InvalidStateUpdate(f"{name}: row {row} is {addresses[row]}, expected 0x + 40 hex digits")
    return addresses


def _wallet_rows(wallets: pa.Array, positions: pa.Array) -> np.ndarray:
    """Check wallet addresses are unique and every position's wallet exists; return each position's row.

    One dictionary encoding of wallets followed by positions does both: wallets are unique exactly when
    their codes run 0..n-1, and then a position's code is its wallet's row (or >= n when it has none).
    """
    n = len(wallets)
    codes = pc.dictionary_encode(pa.chunked_array([wallets, positions], pa.string())).combine_chunks()
    indices = codes.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    wallet_codes = indices[:n]
    if (wallet_codes != np.arange(n)).any():
        row = int(np.argmax(wallet_codes != np.arange(n)))
        raise InvalidStateUpdate(f"wallets: duplicate address {wallets[row]}")
    rows = indices[n:]
    if (rows >= n).any():
        row = int(np.argmax(rows >= n))
        raise InvalidStateUpdate(f"positions: address {positions[row]} is not in wallets")
    return rows


def _check_positions(positions: pa.Table, markets: pa.Table, balanced: bool = True) -> tuple[np.ndarray, pa.Array]:
    """Check the positions; return each one's row in markets and its "address|coin" key."""
    if positions.num_rows == 0:
        return np.zeros(0, np.int64), pa.array([], pa.string())
    coin_index = pc.index_in(positions.column("coin"), value_set=markets.column("coin"))
    if coin_index.null_count:
        row = int(np.argmax(coin_index.is_null().to_numpy(zero_copy_only=False)))
        raise InvalidStateUpdate(f"positions: unknown coin {positions.column('coin')[row]} (row {row})")
    dex_ok = pc.equal(positions.column("dex"), pc.take(markets.column("dex"), coin_index))
    if not pc.all(dex_ok).as_py():
        raise InvalidStateUpdate("positions: dex does not match the coin's dex in markets")
    _finite("positions", positions, ("size", "entry_px", "leverage", "margin_used", "funding"))
    _finite("positions", positions, ("entry_px", "leverage"), positive=True)
    _finite("positions", positions, ("liquidation_px",))
    size = _np(positions, "size")
    if (size == 0).any():
        raise InvalidStateUpdate(f"positions: row {int(np.argmax(size == 0))} has size 0")
    if not pc.all(pc.is_in(positions.column("leverage_type"), value_set=pa.array(["cross", "isolated"]))).as_py():
        raise InvalidStateUpdate("positions.leverage_type: expected 'cross' or 'isolated'")
    keys = pc.binary_join_element_wise(positions.column("address"), positions.column("coin"), "|")
    keys = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    _unique("positions", keys, "(address, coin)")

    codes = coin_index.to_numpy(zero_copy_only=False).astype(np.int64)
    if not balanced:
        return codes, keys
    n = markets.num_rows
    long_size = np.bincount(codes, weights=np.where(size > 0, size, 0.0), minlength=n)
    short_size = np.bincount(codes, weights=np.where(size < 0, -size, 0.0), minlength=n)
    half_lot = 0.5 * 10.0 ** (-_np(markets, "sz_decimals").astype(np.float64))
    tolerance = np.maximum(half_lot, 1e-12 * long_size)
    broken = np.abs(long_size - short_size) > tolerance
    if broken.any():
        i = int(np.argmax(broken))
        coin = markets.column("coin")[i].as_py()
        raise InvalidStateUpdate(
            f"positions: long size {long_size[i]:.10g} != short size {short_size[i]:.10g} for {coin}"
        )
    return codes, keys
