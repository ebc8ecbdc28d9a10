"""The main walk over a snapshot file (see snapshot.py): the clearinghouses (meta, oracle prices, every user's
cash and positions) and the vault shares, with the side sections (side.py) read here or by the helper."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, BinaryIO

import msgpack
import numpy as np
import pyarrow.compute as pc

from hyperscope.sources.hyperliquid.addresses import Addresses, encode, hex_array, keys20
from hyperscope.sources.hyperliquid.rawstate import (
    LEV_CROSS,
    LEV_DEFAULT,
    LEV_ISOLATED,
    Clearinghouse,
    InvalidSnapshot,
    Snapshot,
    Tier,
)
from hyperscope.sources.hyperliquid.side import Helper, Side, SideWalker
from hyperscope.sources.hyperliquid.skips import Skips
from hyperscope.sources.hyperliquid.walk import CHUNK

log = logging.getLogger("hyperscope.sources.hyperliquid")


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
            out.append(
                (
                    account,
                    asset % 10_000,
                    size,
                    cost,
                    kind,
                    leverage,
                    iso_raw,
                    since_open if type(since_open) is int else 0,
                )
            )
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            if skips is None:
                raise ValueError(str(e)) from e
            skips.add("position entries that could not be read", f"{where}.p.p[{j}]: {type(e).__name__}: {e!s:.60}")
    return out


class Reader(SideWalker):
    """The whole walk: the clearinghouses and vaults, and `scl` and `ust` unless a helper reads them."""

    def __init__(self, f: BinaryIO, height: int, side_elsewhere: bool = False) -> None:
        super().__init__(f, height)
        self.side_elsewhere = side_elsewhere  # the helper process reads `scl` and `ust`
        self.found = Addresses()  # every address occurrence of cls and vlt, resolved in bulk by `read`
        self.sections: list[tuple[int, str, bool]] = []  # (first occurrence, path, one address per element)
        self.time_ms = 0
        self.clearinghouses: list[Clearinghouse] = []
        self.vaults: tuple[list[int], list[int], list[float]] = ([], [], [])

    def intern(self, raw: Any) -> int:
        """An occurrence id for one address (resolved to its wallet by `read`)."""
        return self.found.add([raw])

    def _bad_address(self, found: Addresses, i: int, offset: int) -> None:
        start, path, exact = max((m for m in self.sections if m[0] <= i + offset), default=(0, "", False))
        where = f"{path}[{i + offset - start}]" if exact else path
        raise InvalidSnapshot(f"snapshot {self.height}: {found.piece(i)!r:.60} is not an address at {where}")

    # ------------------------------------------------------------ walking

    def read(self, helper: Helper | None = None) -> Snapshot:
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
        indices, distinct = encode(np.concatenate([own, side.spot_raw]))
        row, spot_row = indices[: len(own)], indices[len(own) :]
        addresses = hex_array(distinct)
        for house in self.clearinghouses:
            house.user = row[house.user]
        vault, vault_user, fraction = self.vaults
        mode_user, mode = self._modes(distinct, side)
        return Snapshot(
            height=self.height,
            time_ms=self.time_ms,
            addresses=addresses,
            clearinghouses=self.clearinghouses,
            spot_user=spot_row[side.spot_user],
            spot_token=side.spot_token,
            spot_total=side.spot_total,
            vault=row[np.array(vault, np.int64)],
            vault_user=row[np.array(vault_user, np.int64)],
            vault_fraction=np.array(fraction, np.float64),
            skipped=self.skips,
            account_modes=side.account_modes,
            mode_user=mode_user,
            mode=mode,
            helper_peak_bytes=side.peak_bytes if helper is not None else 0,
        )

    def _side_of(self, helper: Helper | None) -> Side:
        """The side walk's result: this reader's own (one process), the helper's, or, when the helper failed,
        a second walk here."""
        if helper is None:
            return self.side()
        result = helper.result()
        if isinstance(result, str):
            raise InvalidSnapshot(result)
        if result is not None:
            return result
        log.warning("snapshot %d: the helper process failed; reading spot balances and account modes here", self.height)
        with open(helper.path, "rb") as f:  # noqa: PTH123
            other = SideWalker(f, self.height)
            other.to_locus(other.locus)
        return other.side()

    def _modes(self, distinct: np.ndarray, side: Side) -> tuple[np.ndarray, np.ndarray]:
        """The account modes (`ust`) of the wallets holding positions, as (address row, code): a mode changes
        nothing for the others (collateral.py), so only theirs are looked up (a small hash set of the holders,
        probed once per entry)."""
        held = [house.user[house.pos_account] for house in self.clearinghouses if house.pos_account.size]
        if not held or not side.mode_code.size:
            return np.zeros(0, np.int64), np.zeros(0, np.int8)
        holders = np.unique(np.concatenate(held))
        at = pc.index_in(keys20(side.mode_raw), value_set=keys20(distinct[holders])).fill_null(-1)
        at = at.to_numpy(zero_copy_only=False)
        keep = at >= 0
        return holders[at[keep]].astype(np.int64), side.mode_code[keep]

    def locus(self) -> None:
        u = self.unpacker
        for key in self.entries("locus"):
            if key == b"cls":
                for i in range(self.array("cls")):
                    self.path.append(f"[{i}]")
                    self.clearinghouses.append(self.clearinghouse(i))
                    self.path.pop()
            elif key in (b"scl", b"ust") and self.side_elsewhere:
                self.skip()  # the helper process reads them
            elif key in (b"scl", b"ust"):
                self.side_section(key)
            elif key == b"vlt":
                self.vault_shares()
            elif key == b"ctx":
                ctx = u.unpack()
                if isinstance(ctx, dict) and b"time" in ctx:
                    self.time_ms = _time_ms(ctx[b"time"])
                if isinstance(ctx, dict) and isinstance(ctx.get(b"height"), int) and ctx[b"height"] != self.height:
                    # the file name wins (real-shapes.md): one warning, counted
                    self.skips.add(
                        "snapshots whose ctx.height is not their file name's",
                        f"{self.where()}: {ctx[b'height']} in a file named {self.height}",
                    )
                    log.warning(
                        "snapshot %d: ctx.height says %s; the file name's height is used", self.height, ctx[b"height"]
                    )
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
        (
            house.pos_account,
            house.pos_coin,
            house.pos_size,
            house.pos_cost,
            kind,
            house.pos_leverage,
            house.pos_iso_raw,
            house.pos_funding,
        ) = (cols[:, i].copy() for i in range(8))
        house.pos_lev_kind = kind.astype(np.int8)
        bad = (house.pos_coin < 0) | (house.pos_coin >= len(house.coins))
        if bad.any():
            row = int(np.argmax(bad))
            self.skips.add(
                "positions on an asset meta does not list",
                f"cls[{index}]: asset {house.pos_coin[row]} ({len(house.coins)} coins listed)",
                int(bad.sum()),
            )
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
            index=index,
            coins=coins,
            sz_decimals=np.array(decimals, np.int64),
            margin_table=np.array(tables, np.int64),
            strict_isolated=np.array(strict, bool) if n else np.zeros(0, bool),
            margin_tables=margin_tables,
            oracle_raw=np.full(n, -1, np.int64),
            user=empty,
            raw_usd=empty,
            pos_account=empty,
            pos_coin=empty,
            pos_size=empty,
            pos_cost=empty,
            pos_lev_kind=np.zeros(0, np.int8),
            pos_leverage=empty,
            pos_iso_raw=empty,
            pos_funding=empty,
            collateral_token=token,
        )

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

    def _user_states_one_by_one(
        self,
        chunk: list[Any],
        done: int,
        users: tuple[list[np.ndarray], list[np.ndarray]],
        positions: list[tuple[int, ...]],
    ) -> None:
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
                    self.skips.add(
                        "vault followers that could not be read",
                        f"{here}.user_states[{j}]: {type(e).__name__}: {e!s:.60}",
                    )
                    continue
                vaults.append(vault_index)
                users.append(self.intern(user))
                fractions.append(float(fraction))
