"""Read a node's ABCI state snapshot (`periodic_abci_states/{date}/{height}.rmp`) by streaming it.

The file is one MessagePack map of about a gigabyte on mainnet. It is never unpacked whole: the reader
walks the maps key by key, `skip()`s every subtree it does not need (order books, staking internals, the
fee tracker, ...) and unpacks one user state at a time, with the garbage collector paused. What it keeps
is the raw integers of the clearinghouses (`exchange.locus.cls[i]`: meta, oracle prices, every user's cash
and positions), spot balances (`locus.scl`) and vault shares (`locus.vlt`), as numpy columns.

The format is undocumented and drifts, so every key is guarded: anything that does not fit raises
`InvalidSnapshot` naming the height and the path inside the file (`...cls[1].user_states.user_to_state[42].p`),
and nothing of that snapshot is used.

Scales (sources.md section 1.5): sizes are integers x 10^szDecimals, USD amounts x 1e6, oracle prices
x 10^(6 - szDecimals); leverage is `{"C": n}` (cross) or `{"I": {"l": n, "u": raw_usd}}` (isolated), and
when absent the market default applies. Entries with size 0 only hold a leverage preference and are skipped.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import msgpack
import numpy as np

from hyperscope.errors import InvalidStateUpdate

LEV_DEFAULT, LEV_CROSS, LEV_ISOLATED = 0, 1, 2
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

    @property
    def dex(self) -> str:
        """ "" for the main dex; for HIP-3 the `dex` of its `dex:coin` names."""
        if self.index == 0:
            return ""
        for coin in self.coins:
            if ":" in coin:
                return coin.split(":", 1)[0]
        return f"dex{self.index}"

    def oracle_px(self) -> np.ndarray:
        px = self.oracle_raw.astype(np.float64) / 10.0 ** (6 - self.sz_decimals)
        return np.where(self.oracle_raw > 0, px, np.nan)


@dataclass
class Snapshot:
    height: int
    time_ms: int
    addresses: list[str]
    clearinghouses: list[Clearinghouse]
    spot_user: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    spot_token: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    spot_total: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # token wei
    vault: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # address index of the vault
    vault_user: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    vault_fraction: np.ndarray = field(default_factory=lambda: np.zeros(0))


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


def read_snapshot(path: Path, height: int | None = None, mtime_fallback: bool = True) -> Snapshot:
    """Stream-decode one `.rmp` file (see the module docstring)."""
    height = height if height is not None else height_of(path)
    if height is None:
        raise InvalidSnapshot(f"{path.name}: not a {{height}}.rmp snapshot file")
    with path.open("rb") as f, _gc_paused():
        reader = _Reader(f, height)
        try:
            snapshot = reader.read()
        except InvalidSnapshot:
            raise
        except (
            msgpack.UnpackException,
            ValueError,
            TypeError,
            KeyError,
            IndexError,
            AttributeError,
            OverflowError,
        ) as e:
            raise InvalidSnapshot(f"snapshot {height}: unreadable at {reader.where()}: {type(e).__name__}: {e}") from e
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


class _Reader:
    """The walk over one file; `self.path` is kept up to date for error messages."""

    def __init__(self, f: BinaryIO, height: int) -> None:
        self.unpacker = msgpack.Unpacker(f, raw=True, strict_map_key=False, max_buffer_size=2**31 - 1,
                                         read_size=READ_BUFFER)  # fmt: skip
        self.height = height
        self.path: list[str] = []
        self.address_index: dict[bytes, int] = {}
        self.addresses: list[bytes] = []
        self.time_ms = 0
        self.clearinghouses: list[Clearinghouse] = []
        self.spot: tuple[list[int], list[int], list[int]] = ([], [], [])
        self.vaults: tuple[list[int], list[int], list[float]] = ([], [], [])

    def where(self) -> str:
        return "".join(p if p.startswith("[") else f".{p}" for p in self.path).lstrip(".") or "the top"

    def fail(self, message: str) -> InvalidSnapshot:
        return InvalidSnapshot(f"snapshot {self.height}: {message} at {self.where()}")

    def intern(self, raw: Any) -> int:
        address = _address(raw)
        index = self.address_index.get(address)
        if index is None:
            index = self.address_index[address] = len(self.addresses)
            self.addresses.append(address)
        return index

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

    def array(self, name: str) -> int:
        try:
            return self.unpacker.read_array_header()
        except msgpack.UnpackValueError as e:
            raise self.fail(f"expected an array for {name}") from e

    def read(self) -> Snapshot:
        u = self.unpacker
        for key in self.entries("the file"):
            if key == b"exchange":
                for key2 in self.entries("exchange"):
                    if key2 == b"locus":
                        self.locus()
                    else:
                        u.skip()
            else:
                u.skip()
        try:
            u.unpack()
        except msgpack.OutOfData:
            pass
        else:
            raise self.fail("data after the end of the state")
        if not self.clearinghouses:
            raise self.fail("no clearinghouse (exchange.locus.cls)")
        spot_user, spot_token, spot_total = (np.array(c, np.int64) for c in self.spot)
        vault, vault_user, fraction = self.vaults
        return Snapshot(
            height=self.height, time_ms=self.time_ms,
            addresses=[a.decode() for a in self.addresses], clearinghouses=self.clearinghouses,
            spot_user=spot_user, spot_token=spot_token, spot_total=spot_total,
            vault=np.array(vault, np.int64), vault_user=np.array(vault_user, np.int64),
            vault_fraction=np.array(fraction, np.float64),
        )  # fmt: skip

    def locus(self) -> None:
        u = self.unpacker
        for key in self.entries("locus"):
            if key == b"cls":
                for i in range(self.array("cls")):
                    self.path.append(f"[{i}]")
                    self.clearinghouses.append(self.clearinghouse(i))
                    self.path.pop()
            elif key == b"scl":
                self.spot_balances()
            elif key == b"vlt":
                self.vault_shares()
            elif key == b"ctx":
                ctx = u.unpack()
                if isinstance(ctx, dict) and b"time" in ctx:
                    self.time_ms = _time_ms(ctx[b"time"])
                if isinstance(ctx, dict) and isinstance(ctx.get(b"height"), int) and ctx[b"height"] != self.height:
                    raise self.fail(f"file is named for height {self.height} but holds height {ctx[b'height']}")
            else:
                u.skip()

    # ------------------------------------------------------------ a clearinghouse

    def clearinghouse(self, index: int) -> Clearinghouse:
        u = self.unpacker
        meta: dict[bytes, Any] | None = None
        oracle: Any = None
        users: tuple[list[int], list[int]] = ([], [])
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
                        u.skip()
            else:
                u.skip()
        if not isinstance(meta, dict):
            raise self.fail("no meta in clearinghouse")
        self.path.append("meta")
        house = self.meta(index, meta)
        self.path[-1] = "oracle"
        house.oracle_raw = self.oracle(oracle, len(house.coins))
        self.path.pop()
        cols = np.array(positions, np.int64).reshape(-1, 8)
        house.user, house.raw_usd = np.array(users[0], np.int64), np.array(users[1], np.int64)
        (house.pos_account, house.pos_coin, house.pos_size, house.pos_cost, kind,
         house.pos_leverage, house.pos_iso_raw, house.pos_funding) = (cols[:, i].copy() for i in range(8))  # fmt: skip
        house.pos_lev_kind = kind.astype(np.int8)
        bad = (house.pos_coin < 0) | (house.pos_coin >= len(house.coins))
        if bad.any():
            row = int(np.argmax(bad))
            raise self.fail(f"position {row} is on asset {house.pos_coin[row]}, which meta does not list "
                            f"({len(house.coins)} coins) in cls[{index}]")  # fmt: skip
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
        return Clearinghouse(
            index=index, coins=coins, sz_decimals=np.array(decimals, np.int64), margin_table=np.array(tables, np.int64),
            strict_isolated=np.array(strict, bool) if n else np.zeros(0, bool), margin_tables=margin_tables,
            oracle_raw=np.full(n, -1, np.int64), user=empty, raw_usd=empty, pos_account=empty, pos_coin=empty,
            pos_size=empty, pos_cost=empty, pos_lev_kind=np.zeros(0, np.int8), pos_leverage=empty,
            pos_iso_raw=empty, pos_funding=empty,
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

    def user_states(self, users: tuple[list[int], list[int]], positions: list[tuple[int, ...]]) -> None:
        """`user_to_state`: [[address, {"u": cash, "p": {"p": [[asset, position], ...]}}], ...]."""
        u = self.unpacker
        user_col, cash_col = users
        append_user, append_cash, append_position = user_col.append, cash_col.append, positions.append
        n = self.array("user_to_state")
        for i in range(n):
            pair = u.unpack()
            try:
                address, state = pair
                account = len(user_col)
                append_user(self.intern(address))
                append_cash(state.get(b"u", 0))
                held = state.get(b"p")
                if not held:
                    continue
                for asset, p in held[b"p"]:
                    size = p[b"s"]
                    if size == 0:
                        continue  # a leverage preference only
                    if type(size) is not int or type(p[b"e"]) is not int:
                        raise ValueError(f"size {size!r:.30} or entry cost {p[b'e']!r:.30} is not an integer")
                    lev = p.get(b"l")
                    if lev is None:
                        kind, leverage, iso_raw = LEV_DEFAULT, 0, 0
                    elif b"C" in lev:
                        kind, leverage, iso_raw = LEV_CROSS, lev[b"C"], 0
                    else:
                        iso = lev[b"I"]
                        kind, leverage, iso_raw = LEV_ISOLATED, iso[b"l"], iso.get(b"u", 0)
                    funding = p.get(b"f")
                    paid = funding.get(b"o", 0) if funding else 0
                    append_position((account, asset % 10_000, size, p[b"e"], kind, leverage, iso_raw, paid))
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                self.path.append(f"[{i}]")
                raise self.fail(f"unexpected user state ({type(e).__name__}: {e!s:.80})") from e
        if cash_col and not all(type(c) is int for c in cash_col[-n:]):
            raise self.fail("a user's cash (u) is not an integer")

    # ------------------------------------------------------------ spot and vaults

    def spot_balances(self) -> None:
        """`locus.scl.user_states`: [[address, {"b": [[token, {"t": total}], ...]}], ...]."""
        u = self.unpacker
        users, tokens, totals = self.spot
        for key in self.entries("scl"):
            if key != b"user_states":
                u.skip()
                continue
            for i in range(self.array("scl.user_states")):
                pair = u.unpack()
                try:
                    address, state = pair
                    balances = state.get(b"b") or []
                    if not balances:
                        continue
                    who = self.intern(address)
                    for token, balance in balances:
                        total = balance[b"t"] if isinstance(balance, dict) else balance
                        if total:
                            users.append(who)
                            tokens.append(_int(token, "token"))
                            totals.append(_int(total, "t"))
                except (ValueError, TypeError, KeyError, AttributeError) as e:
                    self.path.append(f"[{i}]")
                    raise self.fail(f"unexpected spot balance ({type(e).__name__}: {e!s:.80})") from e

    def vault_shares(self) -> None:
        """`locus.vlt`: [[vault, {"user_states": [[user, {"o": {"f": fraction, ...}}], ...]}], ...]."""
        u = self.unpacker
        vaults, users, fractions = self.vaults
        for i in range(self.array("vlt")):
            pair = u.unpack()
            try:
                vault_address, vault = pair
                vault_index = self.intern(vault_address)
                for user, share in vault.get(b"user_states", []) or []:
                    fraction = share[b"o"][b"f"]
                    if not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
                        raise ValueError(f"ownership fraction {fraction!r:.30} is not in [0, 1]")
                    vaults.append(vault_index)
                    users.append(self.intern(user))
                    fractions.append(float(fraction))
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                self.path.append(f"[{i}]")
                raise self.fail(f"unexpected vault ({type(e).__name__}: {e!s:.80})") from e


def users_with_positions(path: Path) -> list[str]:
    """Every clearinghouse's `user_states.users_with_positions` of one snapshot: a cheap pass that skips the
    user states themselves (the address universe of `--source info` next to a node)."""
    height = height_of(path) or 0
    found: dict[bytes, None] = {}
    with path.open("rb") as f, _gc_paused():
        reader = _Reader(f, height)
        u = reader.unpacker
        try:
            for key in reader.entries("the file"):
                if key != b"exchange":
                    u.skip()
                    continue
                for key2 in reader.entries("exchange"):
                    if key2 != b"locus":
                        u.skip()
                        continue
                    for key3 in reader.entries("locus"):
                        if key3 != b"cls":
                            u.skip()
                            continue
                        for _ in range(reader.array("cls")):
                            for key4 in reader.entries("a clearinghouse"):
                                if key4 != b"user_states":
                                    u.skip()
                                    continue
                                for key5 in reader.entries("user_states"):
                                    if key5 == b"users_with_positions":
                                        found.update((_address(a), None) for a in u.unpack())
                                    else:
                                        u.skip()
        except (msgpack.UnpackException, ValueError, TypeError) as e:
            raise InvalidSnapshot(f"snapshot {height}: unreadable at {reader.where()}: {e}") from e
    return [a.decode() for a in found]
