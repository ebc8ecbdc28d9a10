"""Read a node's ABCI state snapshot (`periodic_abci_states/{date}/{height}.rmp`) by streaming it.

The file is one MessagePack map of about a gigabyte on mainnet. It is never unpacked whole: the reader
walks the maps key by key, `skip()`s every subtree it does not need (order books, staking internals, the
fee tracker, ...) and unpacks one user state at a time, with the garbage collector paused. What it keeps
is the raw integers of the clearinghouses (`exchange.locus.cls[i]`: meta, oracle prices, every user's cash
and positions), spot balances (`locus.scl`) and vault shares (`locus.vlt`), as numpy columns.

The format is undocumented and drifts (real-shapes.md), so every key is guarded, and what does not fit is
treated by its reach: a file that cannot be a snapshot (not MessagePack, truncated, no `locus`, no
clearinghouse, a clearinghouse without meta) raises `InvalidSnapshot` naming the height and the path inside
the file, and nothing of it is used; anything narrower (one user state, one position entry, one spot balance,
one vault follower, a `ctx.height` unlike the file name) is skipped and counted in `Snapshot.skipped` by kind,
with the path of the first of each kind (`...cls[1].user_states.user_to_state[42]`). Sections the reader does
not use are passed over wherever they sit, whatever their size.

Scales (sources.md section 1.5): sizes are integers x 10^szDecimals, USD amounts x 1e6, oracle prices
x 10^(6 - szDecimals); leverage is `{"C": n}` (cross) or `{"I": {"l": n, "u": raw_usd}}` (isolated), and
when absent the market default applies (the entry's `M` is kept for it). An entry with no, null or zero
size only holds a leverage preference: it is not a position.
"""

from __future__ import annotations

import gc
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import msgpack
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hyperscope.errors import InvalidStateUpdate
from hyperscope.sources.hyperliquid.skips import Skips

log = logging.getLogger("hyperscope.sources.hyperliquid")

LEV_DEFAULT, LEV_CROSS, LEV_ISOLATED = 0, 1, 2
# account modes (`locus.ust`, collateral.py): default, unified, dex abstraction, portfolio margin
MODE_DEFAULT, MODE_UNIFIED, MODE_DEX_ABSTRACTION, MODE_PORTFOLIO = 0, 1, 2, 3
MODE_CODES = {b"u": MODE_UNIFIED, b"d": MODE_DEX_ABSTRACTION, b"p": MODE_PORTFOLIO}
MODE_NAMES = {MODE_UNIFIED: "unified", MODE_DEX_ABSTRACTION: "dex abstraction", MODE_PORTFOLIO: "portfolio margin",
              -1: "unknown"}  # fmt: skip
READ_BUFFER = 8 * 1024 * 1024


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
            if ":" in coin:
                return coin.split(":", 1)[0]
        return f"dex{self.index}"

    def keep_positions(self, keep: np.ndarray) -> None:
        """Drop the positions where `keep` is False (every pos_* column alike)."""
        for name in ("pos_account", "pos_coin", "pos_size", "pos_cost", "pos_lev_kind", "pos_leverage", "pos_iso_raw",
                     "pos_funding"):  # fmt: skip
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


def height_of(path: Path) -> int | None:
    """The height a snapshot file is named for, or None for anything else (`abci_state.rmp`, temp files)."""
    stem, suffix = path.stem, path.suffix
    if suffix != ".rmp" or not stem.isdigit() or not stem.isascii():
        return None
    return int(stem)


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


PARALLEL_FROM_BYTES = 64 * 1024 * 1024  # files this big read their spot balances in a second process
_UNREADABLE = (msgpack.UnpackException, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


def read_snapshot(
    path: Path, height: int | None = None, mtime_fallback: bool = True, parallel: bool | None = None
) -> Snapshot:
    """Stream-decode one `.rmp` file (see the module docstring).

    A big file is read by two processes at once: this one walks the clearinghouses and vaults while a helper
    process walks the spot balances (`locus.scl`) and account modes (`locus.ust`) and parses their addresses
    (two cores). If the helper fails, they are read here after all.
    """
    height = height if height is not None else height_of(path)
    if height is None:
        raise InvalidSnapshot(f"{path.name}: not a {{height}}.rmp snapshot file")
    if parallel is None:
        parallel = path.stat().st_size >= PARALLEL_FROM_BYTES
    helper = _Helper.start(path, height) if parallel else None
    with path.open("rb") as f, _gc_paused():
        reader = _Reader(f, height, side_elsewhere=helper is not None)
        try:
            snapshot = reader.read(helper)
        except InvalidSnapshot:
            raise
        except _UNREADABLE as e:
            raise InvalidSnapshot(f"snapshot {height}: unreadable at {reader.where()}: {type(e).__name__}: {e}") from e
        finally:
            if helper is not None:
                helper.close()
    if snapshot.time_ms <= 0:
        if not mtime_fallback:
            raise InvalidSnapshot(f"snapshot {height}: no time at exchange.locus.ctx.time")
        snapshot.time_ms = int(path.stat().st_mtime * 1000)
    return snapshot


def _address(raw: Any) -> bytes:
    """The canonical lower-case `0x...` bytes of an address given as text or as 20 raw bytes."""
    if isinstance(raw, bytes):
        if len(raw) == 20:
            return b"0x" + raw.hex().encode()
        if len(raw) == 42 and raw[:2] in (b"0x", b"0X"):
            return raw.lower()
    if isinstance(raw, str) and len(raw) == 42:
        return raw.lower().encode()
    raise ValueError(f"not an address: {raw!r:.60}")


def _int(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"{what} is {type(value).__name__} {value!r:.40}, expected an integer")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _time_ms(value: Any) -> int:
    """`ctx.time`: epoch ms (or s), or an ISO time with up to nanoseconds, UTC."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 10**11 else value * 1000
    text = _text(value).rstrip("Z")
    whole, _, fraction = text.partition(".")
    moment = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1000 + int((fraction + "000")[:3] or 0)


CHUNK = 256  # user states handled together; small enough that their objects stay in cache

_NIBBLE = np.full(256, 255, np.uint8)
_NIBBLE[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16, dtype=np.uint8)
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", np.uint8)
# two hex characters (read as one little-endian uint16) -> their byte value, or 256 when not hex
_PAIR = (_NIBBLE.astype(np.uint16)[np.arange(65536) & 0xFF] << 4) | _NIBBLE.astype(np.uint16)[np.arange(65536) >> 8]
_PAIR[(_NIBBLE[np.arange(65536) & 0xFF] == 255) | (_NIBBLE[np.arange(65536) >> 8] == 255)] = 256


class _Addresses:
    """Every address occurrence, kept as bytes blobs (not one Python object each: holding millions of them
    slows the unpacking itself), resolved at the end in bulk: text and 20-byte forms to 20 raw bytes, one
    hash-based dictionary encoding, and the distinct ones back to lower-case `0x` text."""

    def __init__(self) -> None:
        self.blobs: list[bytes] = []
        self.lengths: list[np.ndarray] = []
        self.count = 0

    def add(self, chunk: list[Any]) -> int:
        """Add a chunk of raw addresses; returns the first one's occurrence id (ids are consecutive)."""
        first = self.count
        self.blobs.append(b"".join(chunk))  # TypeError when one is not bytes
        self.lengths.append(np.fromiter(map(len, chunk), np.int64, len(chunk)))
        self.count += len(chunk)
        return first

    def raw20(self) -> tuple[np.ndarray, int]:
        """(n, 20) uint8 of every occurrence, and the first invalid occurrence (-1 when all are valid)."""
        raw, ok = self.raw20_ok()
        return raw, (int(np.argmax(~ok)) if not ok.all() else -1)

    def raw20_ok(self) -> tuple[np.ndarray, np.ndarray]:
        """(n, 20) uint8 of every occurrence, and which of them are addresses (the others' rows are garbage)."""
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, np.int64)
        data = b"".join(self.blobs)
        n = lengths.size
        if n and (lengths == 42).all():
            return self._parse(np.frombuffer(data, np.uint8).reshape(n, 42))
        if not n or (lengths == 20).all():
            return np.frombuffer(data, np.uint8).reshape(n, 20), np.ones(n, bool)
        ends = np.cumsum(lengths).tolist()  # mixed forms (rare): one at a time
        out = np.zeros((n, 20), np.uint8)
        ok = lengths == 20
        for i in np.nonzero(ok)[0].tolist():
            out[i] = np.frombuffer(data[ends[i] - 20 : ends[i]], np.uint8)
        long = np.nonzero(lengths == 42)[0]
        if long.size:
            text = np.stack([np.frombuffer(data[ends[i] - 42 : ends[i]], np.uint8) for i in long.tolist()])
            out[long], ok[long] = self._parse(text)
        return out, ok

    @staticmethod
    def _parse(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 42) `0x` + hex text (either case) -> (n, 20) bytes, and which rows were such text."""
        values = _PAIR[np.ascontiguousarray(text[:, 2:]).view("<u2")]
        ok = (text[:, 0] == ord("0")) & ((text[:, 1] == ord("x")) | (text[:, 1] == ord("X"))) & (values < 256).all(1)
        return values.astype(np.uint8), ok

    def uniform(self) -> tuple[int, bytes] | None:
        """(width, data) when every occurrence has the same form (42-byte text or 20 bytes), else None."""
        if not self.lengths:
            return None
        lengths = np.concatenate(self.lengths)
        for width in (42, 20):
            if (lengths == width).all():
                data = b"".join(self.blobs)
                self.blobs = [data]  # one copy, not two
                return width, data
        return None

    def piece(self, i: int) -> bytes:
        lengths = np.concatenate(self.lengths)
        end = int(np.cumsum(lengths)[i])
        return b"".join(self.blobs)[end - int(lengths[i]) : end]


def _encode(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-width rows -> (each row's index among the distinct ones, the distinct rows in first-seen order).

    Hashing the first 8 bytes as one integer is cheaper than hashing whole rows; the result is then checked
    row by row against its group's first row, and only if two different rows share their first 8 bytes
    (never, for real addresses) are the whole rows hashed."""
    n, width = rows.shape
    if n and width >= 8:
        head = np.ascontiguousarray(rows[:, :8]).view("<u8").ravel()
        encoded = pc.dictionary_encode(pa.array(head))
        indices = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        first = np.empty(len(encoded.dictionary), np.int64)
        first[indices[::-1]] = np.arange(n - 1, -1, -1)  # each group's first row
        if (rows == rows[first[indices]]).all():
            return indices, rows[first]
    keys = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, pa.py_buffer(np.ascontiguousarray(rows))])
    encoded = pc.dictionary_encode(keys)
    distinct = encoded.dictionary
    data = np.frombuffer(distinct.buffers()[1], np.uint8)[distinct.offset * width :][: len(distinct) * width]
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), data.reshape(-1, width)


def _keys(rows: np.ndarray) -> pa.Array:
    """(m, 20) address bytes as an Arrow fixed-size binary array (no copy)."""
    rows = np.ascontiguousarray(rows)
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(20), rows.shape[0], [None, pa.py_buffer(rows)])


def _has_upper(data: bytes) -> bool:
    return any(c in data for c in (b"A", b"B", b"C", b"D", b"E", b"F"))


def _hex_array(raw: np.ndarray) -> pa.Array:
    """(m, 20) address bytes -> an Arrow string array of lower-case `0x` + 40 hex digits, without Python objects."""
    m = raw.shape[0]
    text = np.empty((m, 42), np.uint8)
    text[:, 0], text[:, 1] = ord("0"), ord("x")
    text[:, 2::2], text[:, 3::2] = _HEX_DIGITS[raw >> 4], _HEX_DIGITS[raw & 15]
    offsets = pa.py_buffer((np.arange(m + 1, dtype=np.int32) * 42).tobytes())
    return pa.Array.from_buffers(pa.string(), m, [None, offsets, pa.py_buffer(text.tobytes())])


def _positions(account: int, held: Any, skips: Skips | None = None, where: str = "") -> list[tuple[int, ...]]:
    """The open positions of one user state's `p.p` as raw columns. An entry with no, null or zero size only
    sets leverage; one that cannot be read is skipped and counted in `skips` (without `skips`, ValueError)."""
    out: list[tuple[int, ...]] = []
    for j, entry in enumerate(held):
        try:
            asset, p = entry
            size = p.get(b"s")
            if size is None or size == 0:
                continue  # a leverage preference on a coin not held
            cost = p.get(b"e")
            if type(size) is not int or type(cost) is not int or type(asset) is not int:
                raise ValueError(f"asset {asset!r:.20}, size {size!r:.30} or entry cost {cost!r:.30} is not an integer")
            lev = p.get(b"l")
            if lev is None:
                default = p.get(b"M", 0)  # HIP-3: the leverage the public parsers take when none is set
                kind, leverage, iso_raw = LEV_DEFAULT, default if type(default) is int else 0, 0
            elif b"C" in lev:
                kind, leverage, iso_raw = LEV_CROSS, lev[b"C"], 0
            else:
                iso = lev[b"I"]
                kind, leverage, iso_raw = LEV_ISOLATED, iso[b"l"], iso.get(b"u", 0)
            if type(leverage) is not int or type(iso_raw) is not int:
                raise ValueError(f"leverage {leverage!r:.20} or isolated margin {iso_raw!r:.20} is not an integer")
            funding = p.get(b"f")
            since_open = funding.get(b"o", 0) if isinstance(funding, dict) else 0
            out.append((account, asset % 10_000, size, cost, kind, leverage, iso_raw,
                        since_open if type(since_open) is int else 0))  # fmt: skip
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            if skips is None:
                raise ValueError(str(e)) from e
            skips.add("position entries that could not be read", f"{where}.p.p[{j}]: {type(e).__name__}: {e!s:.60}")
    return out


def _mode_code(mode: Any) -> int:
    """One `ust` mode as its MODE_* code (-1: a mode no reader knows)."""
    if isinstance(mode, dict) and mode:
        mode = next(iter(mode))
    return MODE_CODES.get(mode, -1) if type(mode) is bytes else -1


def _spot_rows(chunk: list[Any]) -> tuple[list[Any], np.ndarray, np.ndarray, np.ndarray]:
    """Some `scl.user_states` entries as the addresses of the users holding a non-zero balance and, per such
    balance, its user's place among them, its token and total; ValueError and its kin when one does not fit."""
    rows = [(k, token, balance[b"t"] if type(balance) is dict else balance)
            for k, pair in enumerate(chunk) for token, balance in (pair[1].get(b"b") or ())]  # fmt: skip
    table = np.array(rows, np.int64).reshape(-1, 3)  # ValueError or TypeError when one is not an integer
    table = table[table[:, 2] != 0]
    holders = np.unique(table[:, 0])
    return [chunk[k][0] for k in holders.tolist()], np.searchsorted(holders, table[:, 0]), table[:, 1], table[:, 2]


@dataclass
class _Side:
    """What the side walk (`locus.scl` and `locus.ust`) yields: one address per user with a balance, as (m, 20)
    bytes, and per balance its user's row among them, its token and total; the account modes other than the
    default as (k, 20) addresses and codes, and counted per mode; what it skipped; the peak memory of the
    process that walked it."""

    spot_raw: np.ndarray
    spot_user: np.ndarray
    spot_token: np.ndarray
    spot_total: np.ndarray
    mode_raw: np.ndarray
    mode_code: np.ndarray
    account_modes: dict[str, int]
    skips: Skips
    peak_bytes: int = 0

    ARRAYS = ("spot_raw", "spot_user", "spot_token", "spot_total", "mode_raw", "mode_code")


def peak_bytes() -> int:
    """This process's peak resident memory since its program started (`VmHWM`; `ru_maxrss` would also count
    the parent's memory that a spawned process holds for the moment between fork and exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _side_worker(path: str, height: int, conn: Any) -> None:
    """In the helper process: walk `locus.scl` and `locus.ust` and send what they hold (or why they do not fit)."""
    gc.disable()
    try:
        with open(path, "rb") as f:  # noqa: PTH123
            reader = _Reader(f, height, side_only=True)
            try:
                reader.to_locus(reader.locus)
            except InvalidSnapshot:
                raise
            except _UNREADABLE as e:
                raise InvalidSnapshot(
                    f"snapshot {height}: unreadable at {reader.where()}: {type(e).__name__}: {e}"
                ) from e
        side = reader.side()
        arrays = [np.ascontiguousarray(getattr(side, name)) for name in _Side.ARRAYS]
        conn.send(("ok", side.account_modes, dict(side.skips.counts), side.skips.first, peak_bytes(),
                   [(a.shape, a.dtype.str) for a in arrays]))  # fmt: skip
        for a in arrays:
            conn.send_bytes(a.data.cast("B") if a.size else b"")
    except InvalidSnapshot as e:
        conn.send(("invalid", e.message))
    finally:
        conn.close()


class _Helper:
    """A helper process walking `locus.scl` and `locus.ust` while this one reads the rest."""

    def __init__(self, path: Path, process: Any, conn: Any) -> None:
        self.path, self.process, self.conn = path, process, conn

    @classmethod
    def start(cls, path: Path, height: int) -> _Helper | None:
        import multiprocessing

        try:
            context = multiprocessing.get_context("spawn")  # no fork: the parent may run threads
            parent, child = context.Pipe(duplex=False)
            process = context.Process(target=_side_worker, args=(str(path), height, child), daemon=True)
            process.start()
            child.close()
        except OSError as e:
            log.warning("could not start a helper process (%s); reading the snapshot in one", e)
            return None
        return cls(path, process, parent)

    def result(self) -> _Side | str | None:
        """The side walk's result, the reason the snapshot was rejected (str), or None when the helper failed."""
        try:
            head = self.conn.recv()
            if head[0] == "invalid":
                return str(head[1])
            _, modes, counts, first, peak, layout = head
            arrays = {}
            for name, (shape, dtype) in zip(_Side.ARRAYS, layout, strict=True):
                arrays[name] = np.frombuffer(self.conn.recv_bytes(), np.dtype(dtype)).reshape(shape)
        except (EOFError, OSError, ValueError) as e:
            log.warning("snapshot helper process: %s", e)
            return None
        return _Side(**arrays, account_modes=modes, skips=Skips(Counter(counts), dict(first)), peak_bytes=peak)

    def close(self) -> None:
        self.conn.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()


class _Reader:
    """The walk over one file; `self.path` is kept up to date for error messages."""

    def __init__(self, f: BinaryIO, height: int, side_only: bool = False, side_elsewhere: bool = False) -> None:
        self.unpacker = msgpack.Unpacker(f, raw=True, strict_map_key=False, max_buffer_size=2**31 - 1,
                                         read_size=READ_BUFFER)  # fmt: skip
        self.height = height
        self.path: list[str] = []
        self.found = _Addresses()  # every address occurrence of cls and vlt; resolved in bulk by `_resolve`
        self.side_only, self.side_elsewhere = side_only, side_elsewhere  # ust + scl: only them / elsewhere
        self.sections: list[tuple[int, str, bool]] = []  # (first occurrence, path, one address per element)
        self.time_ms = 0
        self.clearinghouses: list[Clearinghouse] = []
        self.spot_found = _Addresses()  # spot balances' addresses, and per balance (occurrence, token, total)
        self.spot_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.vaults: tuple[list[int], list[int], list[float]] = ([], [], [])
        self.skips = Skips()
        self.account_modes: dict[str, int] = {}
        self.modes_found = _Addresses()  # `ust` addresses, and their mode codes
        self.mode_codes: list[np.ndarray] = []

    def where(self) -> str:
        return "".join(p if p.startswith("[") else f".{p}" for p in self.path).lstrip(".") or "the top"

    def fail(self, message: str) -> InvalidSnapshot:
        return InvalidSnapshot(f"snapshot {self.height}: {message} at {self.where()}")

    def intern(self, raw: Any) -> int:
        """An occurrence id for one address (resolved to the address's row by `_resolve`)."""
        return self.found.add([raw])

    def _resolve(self, found: _Addresses, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Each occurrence's row among the distinct addresses, and the distinct ones as (m, 20) bytes in order
        of first appearance: every occurrence parsed to 20 bytes (either case, either form), then one
        hash-based encoding. `offset` is the first occurrence's id (for error messages)."""
        if not found.count:
            return np.zeros(0, np.int64), np.zeros((0, 20), np.uint8)
        raw, ok = found.raw20_ok()
        if not ok.all():
            self._bad_address(found, int(np.argmax(~ok)), offset)
        return _encode(raw)

    def _bad_address(self, found: _Addresses, i: int, offset: int) -> None:
        start, path, exact = max((m for m in self.sections if m[0] <= i + offset), default=(0, "", False))
        where = f"{path}[{i + offset - start}]" if exact else path
        raise InvalidSnapshot(f"snapshot {self.height}: {found.piece(i)!r:.60} is not an address at {where}")

    # ------------------------------------------------------------ walking

    def entries(self, name: str) -> Iterator[bytes]:
        """The keys of the map at the cursor; the caller unpacks or skips each value."""
        u = self.unpacker
        try:
            n = u.read_map_header()
        except msgpack.UnpackValueError as e:
            raise self.fail(f"expected a map for {name}") from e
        for _ in range(n):
            key = u.unpack()
            if not isinstance(key, bytes):  # non-text keys only appear inside values we skip whole
                u.skip()
                continue
            self.path.append(key.decode(errors="replace"))
            yield key
            self.path.pop()

    def skip(self, depth: int = 6) -> None:
        """Skip the value at the cursor without holding it whole in the read buffer: maps and long arrays
        are walked, so the buffer holds one element at a time (skipping a 400 MB subtree in one piece would
        buffer all of it)."""
        u = self.unpacker
        if depth == 0:
            u.skip()
            return
        try:
            n = u.read_map_header()
        except ValueError:
            try:
                n = u.read_array_header()
            except ValueError:
                u.skip()
                return
            if n > 1000:  # long lists hold small things: skip them one by one
                for _ in range(n):
                    u.skip()
            else:
                for _ in range(n):
                    self.skip(depth - 1)
            return
        for _ in range(n):
            u.skip()
            self.skip(depth - 1)

    def array(self, name: str) -> int:
        try:
            return self.unpacker.read_array_header()
        except msgpack.UnpackValueError as e:
            raise self.fail(f"expected an array for {name}") from e

    def to_locus(self, at_locus: Callable[[], None]) -> None:
        """Walk the file, skipping everything but `exchange.locus`, where `at_locus` reads on."""
        for key in self.entries("the file"):
            if key != b"exchange":
                self.skip()
                continue
            for key2 in self.entries("exchange"):
                if key2 == b"locus":
                    at_locus()
                else:
                    self.skip()

    def read(self, helper: _Helper | None = None) -> Snapshot:
        u = self.unpacker
        self.to_locus(self.locus)
        try:
            u.unpack()
        except msgpack.OutOfData:
            pass
        else:
            raise self.fail("data after the end of the state")
        if not self.clearinghouses:
            raise self.fail("no clearinghouse (exchange.locus.cls)")
        own, ok = self.found.raw20_ok()  # while the helper, if any, is still at work
        if not ok.all():
            self._bad_address(self.found, int(np.argmax(~ok)), 0)
        side = self._side_of(helper)
        if side.skips is not self.skips:  # another process's or reader's walk
            self.skips.merge(side.skips)
        # every address occurrence (clearinghouses, vaults, then the spot balances') in one encoding: the
        # distinct ones of the clearinghouses come first, the spot-only ones after them
        indices, distinct = _encode(np.concatenate([own, side.spot_raw]))
        row, spot_row = indices[: len(own)], indices[len(own) :]
        addresses = _hex_array(distinct)
        for house in self.clearinghouses:
            house.user = row[house.user]
        vault, vault_user, fraction = self.vaults
        mode_user, mode = self._modes(distinct, side)
        return Snapshot(
            height=self.height, time_ms=self.time_ms, addresses=addresses, clearinghouses=self.clearinghouses,
            spot_user=spot_row[side.spot_user], spot_token=side.spot_token, spot_total=side.spot_total,
            vault=row[np.array(vault, np.int64)], vault_user=row[np.array(vault_user, np.int64)],
            vault_fraction=np.array(fraction, np.float64), skipped=self.skips, account_modes=side.account_modes,
            mode_user=mode_user, mode=mode, helper_peak_bytes=side.peak_bytes if helper is not None else 0,
        )  # fmt: skip

    def _side_of(self, helper: _Helper | None) -> _Side:
        """The side walk's result: this reader's own (one process), the helper's, or, when the helper failed,
        a second walk here."""
        if helper is None:
            return self.side()
        result = helper.result()
        if isinstance(result, str):
            raise InvalidSnapshot(result)
        if result is not None:
            return result
        log.warning("snapshot %d: the helper process failed; reading spot balances and account modes here",
                    self.height)  # fmt: skip
        with open(helper.path, "rb") as f:  # noqa: PTH123
            other = _Reader(f, self.height, side_only=True)
            other.to_locus(other.locus)
        return other.side()

    def side(self) -> _Side:
        """The spot balances and account modes this reader walked: one address per user with a balance (as 20
        bytes) and per balance its user's row among them, token and total; each mode's address (20 bytes) and
        code. A balance or mode whose address is not one is skipped and counted."""
        raw, ok = self.spot_found.raw20_ok()
        users, tokens, totals = (np.concatenate([np.zeros(0, np.int64)] + [r[k] for r in self.spot_rows])
                                 for k in range(3))  # fmt: skip
        if not ok.all():
            bad = int(np.argmax(~ok))
            self.skips.add("spot balances that could not be read", f"locus.scl: {self.spot_found.piece(bad)!r:.60} "
                           "is not an address", int((~ok[users]).sum()))  # fmt: skip
            keep = ok[users]
            compact = np.cumsum(ok) - 1
            raw, users, tokens, totals = raw[ok], compact[users[keep]], tokens[keep], totals[keep]
        mode_raw, mode_ok = self.modes_found.raw20_ok()
        codes = np.concatenate(self.mode_codes) if self.mode_codes else np.zeros(0, np.int8)
        if not mode_ok.all():
            bad = int(np.argmax(~mode_ok))
            self.skips.add("account modes that could not be read", f"locus.ust: {self.modes_found.piece(bad)!r:.60} "
                           "is not an address", int((~mode_ok).sum()))  # fmt: skip
            mode_raw, codes = mode_raw[mode_ok], codes[mode_ok]
        keep = codes > 0  # the default mode changes nothing
        return _Side(spot_raw=raw, spot_user=users, spot_token=tokens, spot_total=totals, mode_raw=mode_raw[keep],
                     mode_code=codes[keep], account_modes=self.account_modes, skips=self.skips,
                     peak_bytes=peak_bytes())  # fmt: skip

    def _modes(self, distinct: np.ndarray, side: _Side) -> tuple[np.ndarray, np.ndarray]:
        """The account modes (`ust`) of the wallets holding positions, as (address row, code): a mode changes
        nothing for the others (collateral.py), so only theirs are looked up (a small hash set of the holders,
        probed once per entry)."""
        held = [house.user[house.pos_account] for house in self.clearinghouses if house.pos_account.size]
        if not held or not side.mode_code.size:
            return np.zeros(0, np.int64), np.zeros(0, np.int8)
        holders = np.unique(np.concatenate(held))
        at = pc.index_in(_keys(side.mode_raw), value_set=_keys(distinct[holders])).fill_null(-1)
        at = at.to_numpy(zero_copy_only=False)
        keep = at >= 0
        return holders[at[keep]].astype(np.int64), side.mode_code[keep]

    def locus(self) -> None:
        u = self.unpacker
        for key in self.entries("locus"):
            if self.side_only and key not in (b"scl", b"ust"):
                self.skip()
            elif key == b"cls":
                for i in range(self.array("cls")):
                    self.path.append(f"[{i}]")
                    self.clearinghouses.append(self.clearinghouse(i))
                    self.path.pop()
            elif key in (b"scl", b"ust") and self.side_elsewhere:
                self.skip()  # the helper process reads them
            elif key == b"scl":
                self.spot_balances()
            elif key == b"ust":
                self.account_mode_counts()
            elif key == b"vlt":
                self.vault_shares()
            elif key == b"ctx":
                ctx = u.unpack()
                if isinstance(ctx, dict) and b"time" in ctx:
                    self.time_ms = _time_ms(ctx[b"time"])
                if isinstance(ctx, dict) and isinstance(ctx.get(b"height"), int) and ctx[b"height"] != self.height:
                    # the file name wins (real-shapes.md): one warning, counted
                    self.skips.add("snapshots whose ctx.height is not their file name's",
                                   f"{self.where()}: {ctx[b'height']} in a file named {self.height}")  # fmt: skip
                    log.warning("snapshot %d: ctx.height says %s; the file name's height is used", self.height,
                                ctx[b"height"])  # fmt: skip
            else:
                self.skip()

    # ------------------------------------------------------------ a clearinghouse

    def clearinghouse(self, index: int) -> Clearinghouse:
        u = self.unpacker
        meta: dict[bytes, Any] | None = None
        oracle: Any = None
        users: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        self._accounts = 0
        positions: list[tuple[int, ...]] = []
        for key in self.entries("a clearinghouse"):
            if key == b"meta":
                meta = u.unpack()
            elif key == b"oracle":
                oracle = u.unpack()
            elif key == b"user_states":
                for key2 in self.entries("user_states"):
                    if key2 == b"user_to_state":
                        self.user_states(users, positions)
                    else:
                        self.skip()
            else:
                self.skip()
        if not isinstance(meta, dict):
            raise self.fail("no meta in clearinghouse")
        self.path.append("meta")
        house = self.meta(index, meta)
        self.path[-1] = "oracle"
        house.oracle_raw = self.oracle(oracle, len(house.coins))
        self.path.pop()
        cols = np.array(positions, np.int64).reshape(-1, 8)
        cash = np.concatenate(users[1]).astype(np.int64) if users[1] else np.zeros(0, np.int64)
        house.user, house.raw_usd = (np.concatenate(users[0]) if users[0] else np.zeros(0, np.int64)), cash
        (house.pos_account, house.pos_coin, house.pos_size, house.pos_cost, kind,
         house.pos_leverage, house.pos_iso_raw, house.pos_funding) = (cols[:, i].copy() for i in range(8))  # fmt: skip
        house.pos_lev_kind = kind.astype(np.int8)
        bad = (house.pos_coin < 0) | (house.pos_coin >= len(house.coins))
        if bad.any():
            row = int(np.argmax(bad))
            self.skips.add("positions on an asset meta does not list", f"cls[{index}]: asset {house.pos_coin[row]} "
                           f"({len(house.coins)} coins listed)", int(bad.sum()))  # fmt: skip
            house.keep_positions(~bad)
        return house

    def meta(self, index: int, meta: dict[bytes, Any]) -> Clearinghouse:
        universe = meta.get(b"universe")
        if not isinstance(universe, list) or not universe:
            raise self.fail("meta.universe is missing or empty")
        coins, decimals, tables, strict = [], [], [], []
        for j, asset in enumerate(universe):
            if not isinstance(asset, dict) or b"name" not in asset:
                raise self.fail(f"meta.universe[{j}] has no name")
            coins.append(_text(asset[b"name"]))
            decimals.append(_int(asset.get(b"szDecimals"), f"meta.universe[{j}].szDecimals"))
            table = asset.get(b"marginTableId", asset.get(b"maxLeverage"))
            tables.append(_int(table, f"meta.universe[{j}].marginTableId"))
            strict.append(_text(asset.get(b"marginMode", b"")) in ("noCross", "strictIsolated"))
        margin_tables: dict[int, list[Tier]] = {}
        for pair in meta.get(b"marginTableIdToMarginTable", []) or []:
            table_id, table = pair
            tiers = table.get(b"margin_tiers") if isinstance(table, dict) else None
            if not isinstance(tiers, list) or not tiers:
                raise self.fail(f"margin table {table_id} has no margin_tiers")
            margin_tables[_int(table_id, "margin table id")] = [
                Tier(_int(t[b"lower_bound"], "lower_bound") / 1e6, _int(t[b"max_leverage"], "max_leverage"))
                for t in tiers
            ]
        for table_id in set(tables) - set(margin_tables):
            if not 0 < table_id < 50:  # ids under 50 are a single tier at that leverage (HL docs)
                raise self.fail(f"margin table {table_id} is used but not defined")
            margin_tables[table_id] = [Tier(0.0, table_id)]
        n = len(coins)
        empty = np.zeros(0, np.int64)
        token = meta.get(b"collateralToken", 0)
        if type(token) is not int or token < 0:
            self.skips.add("collateral tokens that could not be read (USDC assumed)", f"{self.where()}: {token!r:.30}")
            token = 0
        return Clearinghouse(
            index=index, coins=coins, sz_decimals=np.array(decimals, np.int64), margin_table=np.array(tables, np.int64),
            strict_isolated=np.array(strict, bool) if n else np.zeros(0, bool), margin_tables=margin_tables,
            oracle_raw=np.full(n, -1, np.int64), user=empty, raw_usd=empty, pos_account=empty, pos_coin=empty,
            pos_size=empty, pos_cost=empty, pos_lev_kind=np.zeros(0, np.int8), pos_leverage=empty,
            pos_iso_raw=empty, pos_funding=empty, collateral_token=token,
        )  # fmt: skip

    def oracle(self, oracle: Any, n: int) -> np.ndarray:
        raw = np.full(n, -1, np.int64)
        pxs = oracle.get(b"pxs") if isinstance(oracle, dict) else None
        if pxs is None:
            return raw  # no oracle prices: the market data must come from the info API
        if not isinstance(pxs, list):
            raise self.fail("oracle.pxs is not a list")
        for j, entry in enumerate(pxs[:n]):
            if isinstance(entry, list) and entry:  # [] when the asset has no price
                first = entry[0]
                raw[j] = _int(first[b"px"] if isinstance(first, dict) else first, f"oracle.pxs[{j}]")
        return raw

    def user_states(self, users: tuple[list[np.ndarray], list[np.ndarray]], positions: list[tuple[int, ...]]) -> None:
        """`user_to_state`: [[address, {"u": cash, "p": {"p": [[asset, position], ...]}}], ...].

        Unpacked one user state at a time but handled a chunk at a time with comprehensions (most users hold
        no position); a chunk that does not fit is walked element by element, keeping what reads."""
        u = self.unpacker
        user_col, cash_col = users
        found = self.found
        n = self.array("user_to_state")
        self.sections.append((found.count, self.where(), True))
        done = 0
        while done < n:
            chunk = [u.unpack() for _ in range(min(CHUNK, n - done))]
            try:  # the fast path reads the whole chunk first and keeps it only if all of it reads
                first_account = self._accounts
                cash = np.array([pair[1].get(b"u", 0) for pair in chunk])
                if cash.dtype.kind != "i":
                    raise ValueError(f"a user's cash (u) is not an integer ({cash.dtype})")
                held = [(k, pair[1][b"p"]) for k, pair in enumerate(chunk) if b"p" in pair[1]]
                taken = [row for k, h in held if h for row in _positions(first_account + k, h[b"p"])]
                first_id = found.add([pair[0] for pair in chunk])  # TypeError before it adds anything
            except (ValueError, TypeError, KeyError, AttributeError, IndexError):
                self._user_states_one_by_one(chunk, done, users, positions)
            else:
                cash_col.append(cash)
                user_col.append(np.arange(first_id, first_id + len(chunk), dtype=np.int64))
                self._accounts += len(chunk)
                positions.extend(taken)
            done += len(chunk)

    def _user_states_one_by_one(self, chunk: list[Any], done: int, users: tuple[list[np.ndarray], list[np.ndarray]],
                                positions: list[tuple[int, ...]]) -> None:  # fmt: skip
        """A chunk whose fast path failed: every user state that reads is kept, and each one that does not (or
        a position entry of it) is skipped and counted."""
        user_col, cash_col = users
        where = self.where()
        for k, pair in enumerate(chunk):
            here = f"{where}[{done + k}]"
            try:
                address, state = pair
                if type(address) is not bytes:
                    raise TypeError(f"address {address!r:.30} is not text")
                cash = state.get(b"u", 0)
                if type(cash) is not int:
                    raise TypeError(f"cash (u) {cash!r:.30} is not an integer")
                held = state.get(b"p")
                entries = held.get(b"p", []) if isinstance(held, dict) else []
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                self.skips.add("user states that could not be read", f"{here}: {type(e).__name__}: {e!s:.60}")
                continue
            account = self._accounts
            positions.extend(_positions(account, entries or [], self.skips, here))
            user_col.append(np.array([self.found.add([address])], np.int64))
            cash_col.append(np.array([cash], np.int64))
            self._accounts += 1

    # ------------------------------------------------------------ spot and vaults

    def spot_balances(self) -> None:
        """`locus.scl.user_states`: [[address, {"b": [[token, {"t": total}], ...]}], ...]; one address occurrence
        per user with a balance, however many tokens it holds."""
        u = self.unpacker
        for key in self.entries("scl"):
            if key != b"user_states":
                self.skip()
                continue
            n = self.array("scl.user_states")
            done = 0
            while done < n:
                chunk = [u.unpack() for _ in range(min(CHUNK, n - done))]
                try:
                    users, at, tokens, totals = _spot_rows(chunk)
                    first = self.spot_found.add(users)  # TypeError before it adds anything
                except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError):
                    parts = []  # one user at a time: keep what reads, count the rest
                    for k, pair in enumerate(chunk):
                        try:
                            mine = _spot_rows([pair])
                            if any(type(a) is not bytes for a in mine[0]):
                                raise TypeError("the address is not text")
                        except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError) as e:
                            self.skips.add("spot balances that could not be read",
                                           f"{self.where()}[{done + k}]: {type(e).__name__}: {e!s:.60}")  # fmt: skip
                            continue
                        parts.append(mine)
                    users = [a for part in parts for a in part[0]]
                    first = self.spot_found.add(users)
                    places = np.cumsum([0] + [len(part[0]) for part in parts])
                    empty = [np.zeros(0, np.int64)]
                    at = np.concatenate(empty + [part[1] + int(places[i]) for i, part in enumerate(parts)])
                    tokens = np.concatenate(empty + [part[2] for part in parts])
                    totals = np.concatenate(empty + [part[3] for part in parts])
                self.spot_rows.append((at + first, tokens, totals))
                done += len(chunk)

    def account_mode_counts(self) -> None:
        """`locus.ust`, each account's mode ("u" unified, "d" dex abstraction, "p" portfolio margin; 1.8M on
        mainnet): counted per mode, and kept as (address occurrence, code) for collateral.py. Its shape is
        unverified (real-shapes.md): pairs of (address, mode) or a map; a mode given as a map counts by its
        first key; an entry that does not fit is skipped and counted, a section of another shape passed over."""
        u = self.unpacker
        try:
            n = u.read_array_header()
            pairs = True
        except ValueError:
            try:
                n = u.read_map_header()
                pairs = False
            except ValueError:
                self.skip()
                self.skips.add("ust sections of an unknown shape", self.where())
                return
        counts: Counter[int] = Counter()
        done = 0
        while done < n:
            k = min(CHUNK, n - done)
            chunk = [u.unpack() for _ in range(k)] if pairs else [[u.unpack(), u.unpack()] for _ in range(k)]
            try:
                modes = [_mode_code(entry[1]) for entry in chunk]
                if any(len(entry) != 2 for entry in chunk):
                    raise ValueError("an entry is not a pair")
                self.modes_found.add([entry[0] for entry in chunk])  # TypeError before it adds anything
            except (ValueError, TypeError, KeyError, IndexError):
                modes = []
                for i, entry in enumerate(chunk):
                    try:
                        address, mode = entry
                        if type(address) is not bytes:
                            raise TypeError(f"address {address!r:.30} is not text")
                        code = _mode_code(mode)
                    except (ValueError, TypeError) as e:
                        self.skips.add("account modes that could not be read",
                                       f"{self.where()}[{done + i}]: {type(e).__name__}: {e!s:.60}")  # fmt: skip
                        continue
                    self.modes_found.add([address])
                    modes.append(code)
            counts.update(modes)
            self.mode_codes.append(np.array(modes, np.int8))
            done += k
        for code, count in counts.items():
            name = MODE_NAMES.get(code, "unknown")
            self.account_modes[name] = self.account_modes.get(name, 0) + count

    def vault_shares(self) -> None:
        """`locus.vlt`: [[vault, {"user_states": [[user, {"o": {"f": fraction, ...}}], ...]}], ...]."""
        u = self.unpacker
        vaults, users, fractions = self.vaults
        count = self.array("vlt")
        self.sections.append((self.found.count, self.where(), False))
        for i in range(count):
            pair = u.unpack()
            here = f"{self.where()}[{i}]"
            try:
                vault_address, vault = pair
                followers = vault.get(b"user_states", []) or []
                if type(vault_address) is not bytes:
                    raise TypeError(f"vault address {vault_address!r:.30} is not text")
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                self.skips.add("vaults that could not be read", f"{here}: {type(e).__name__}: {e!s:.60}")
                continue
            vault_index = self.intern(vault_address)
            for j, follower in enumerate(followers):
                try:
                    user, share = follower
                    fraction = share[b"o"][b"f"]
                    if not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
                        raise ValueError(f"ownership fraction {fraction!r:.30} is not in [0, 1]")
                    if type(user) is not bytes:
                        raise TypeError(f"follower {user!r:.30} is not text")
                except (ValueError, TypeError, KeyError, AttributeError) as e:
                    self.skips.add("vault followers that could not be read",
                                   f"{here}.user_states[{j}]: {type(e).__name__}: {e!s:.60}")  # fmt: skip
                    continue
                vaults.append(vault_index)
                users.append(self.intern(user))
                fractions.append(float(fraction))


def users_with_positions(path: Path) -> list[str]:
    """Every clearinghouse's `user_states.users_with_positions` of one snapshot: a cheap pass that skips the
    user states themselves (the address universe of `--source info` next to a node)."""
    height = height_of(path) or 0
    found: dict[bytes, None] = {}
    with path.open("rb") as f, _gc_paused():
        reader = _Reader(f, height)
        u = reader.unpacker

        def at_locus() -> None:
            for key in reader.entries("locus"):
                if key != b"cls":
                    reader.skip()
                    continue
                for _ in range(reader.array("cls")):
                    for key2 in reader.entries("a clearinghouse"):
                        if key2 != b"user_states":
                            reader.skip()
                            continue
                        for key3 in reader.entries("user_states"):
                            if key3 == b"users_with_positions":
                                found.update((_address(a), None) for a in u.unpack())
                            else:
                                reader.skip()

        try:
            reader.to_locus(at_locus)
        except (msgpack.UnpackException, ValueError, TypeError) as e:
            raise InvalidSnapshot(f"snapshot {height}: unreadable at {reader.where()}: {e}") from e
    return [a.decode() for a in found]
