"""Fills and misc events the node writes batched by block (`--batch-by-block`, sources.md section 1.6).

Files: `{data}/node_fills_by_block/hourly/{YYYYMMDD}/{H}` and `{data}/misc_events_by_block/hourly/...`, one
block per line: `{"local_time", "block_time", "block_number", "events": [...]}`. Files roll over by
processing time, so a block of hour H may sit in the file of hour H+1: a `BlockStream` therefore reads the
files in order as one stream and hands out blocks by block number, never by file name. Only complete
lines are read (the node may be writing the last one), and the stream remembers where it stopped.

One bad record never blocks a stream: a line that is not a block, a cut last line that can no longer be
finished (a later file exists, or the folder is a finished replay) and an event of a shape we cannot read
are skipped, counted by kind in `Skips` and logged once per snapshot; the read position moves past them.

Fill events are `[user, fill]` in the API's fill format; misc events are externally tagged
(`{"inner": {"LedgerUpdate": ...}}`). What hyperscope takes from them:
- fills: perp volume, liquidations and position open times (columns of the FILLS schema);
- ledger updates: USDC moved into or out of a wallet's perp account (deposits, withdrawals, transfers,
  vault deposits), so that PnL is not confused with money moved;
- CDeposit / CWithdrawal: HYPE moved into or out of staking.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from hyperscope.domain.state import FILLS, fill_window
from hyperscope.sources.hyperliquid.skips import Skips

log = logging.getLogger("hyperscope.sources.hyperliquid")

READ_BYTES = 8 * 1024 * 1024  # how much of a file is read at once
FILLS_DIR = "node_fills_by_block"
MISC_DIR = "misc_events_by_block"


def _order(path: Path) -> tuple[str, int]:
    """A `{YYYYMMDD}/{H}` file's place in time: the day, then the hour as a number (`10` after `9`)."""
    return path.parent.name, int(path.name) if path.name.isdigit() else -1


def hourly_files(root: Path) -> list[Path]:
    """`{root}/hourly/{YYYYMMDD}/{H}` in time order (hours are not zero-padded, so sort by number)."""
    base = root / "hourly"
    if not base.is_dir():
        return []
    found = []
    for day in base.iterdir():
        if not (day.is_dir() and day.name.isdigit() and len(day.name) == 8):
            continue
        for hour in day.iterdir():
            if hour.is_file() and hour.name.isdigit():
                found.append((day.name, int(hour.name), hour))
    return [path for _, _, path in sorted(found)]


@dataclass
class Block:
    number: int
    time_ms: int
    events: list[Any]
    file: str = ""  # where its line starts, to resume at it
    offset: int = 0


def _block_time(text: Any) -> int:
    """`block_time` such as "2026-03-31T08:59:59.852527297" (UTC) -> epoch ms."""
    whole, _, fraction = str(text).rstrip("Z").partition(".")
    moment = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1000 + int((fraction + "000")[:3])


@dataclass
class BlockStream:
    """The blocks of one event kind, in file order, from a remembered (file, offset) on."""

    root: Path
    file: str | None = None  # path relative to root of the file being read
    offset: int = 0
    pending: list[Block] = field(default_factory=list)
    last_block: int = 0
    complete: bool = False  # every file is finished (a replay): a cut last line will never be completed
    skips: Skips = field(default_factory=Skips)
    reached: bool = False  # the last `batches` call saw a block past its height

    def _files_from_cursor(self) -> list[Path]:
        files = hourly_files(self.root)
        if self.file is None:
            return files
        names = [str(p.relative_to(self.root)) for p in files]
        if self.file not in names:  # pruned away: start at the next file in time order (hours as numbers)
            gone = _order(Path(self.file))
            later = [p for p in files if _order(p) > gone]
            self.file, self.offset = None, 0
            return later
        return files[names.index(self.file) :]

    def _lines(self, path: Path, final: bool) -> Iterator[tuple[int, bytes, bool]]:
        """(offset, line, cut) of each line from the cursor on, read `READ_BYTES` at a time; the cursor moves
        past each line as it is handed out. A last line without its newline is handed out (`cut`) only when
        the file is `final`; otherwise it is left for a later read (the node may be writing it)."""
        with path.open("rb") as f:
            f.seek(self.offset)
            carry = b""
            while True:
                piece = f.read(READ_BYTES)
                data = carry + piece
                end = data.rfind(b"\n") + 1
                at = 0
                while at < end:
                    stop = data.index(b"\n", at)
                    start, at = at, stop + 1
                    self.offset += at - start
                    yield self.offset - (at - start), data[start:stop], False
                carry = data[end:]
                if not piece:
                    break
            if carry and final:
                self.offset += len(carry)
                yield self.offset - len(carry), carry, True

    def _read_more(self) -> Iterator[Block]:
        """Every block from the cursor on, file after file, in bounded pieces: a caller that stops taking
        blocks leaves the cursor right after the last one it took."""
        files = self._files_from_cursor()
        for k, path in enumerate(files):
            name = str(path.relative_to(self.root))
            if name != self.file:
                self.file, self.offset = name, 0
            final = self.complete or k < len(files) - 1  # a later file exists: this one can no longer grow
            for offset, line, cut in self._lines(path, final):
                if not line.strip():
                    continue
                where = f"{name} line after byte {offset}"
                try:
                    raw = orjson.loads(line)
                    block = Block(int(raw["block_number"]), _block_time(raw["block_time"]), raw["events"], name, offset)
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    self.skips.add(
                        "cut last lines" if cut else "lines that are not blocks",
                        f"{where}: {type(e).__name__}: {e!s:.60}",
                    )
                    continue
                if not isinstance(block.events, list):
                    self.skips.add("blocks without an event list", where)
                    continue
                yield block

    def batches(self, height: int, max_events: int = 50_000) -> Iterator[list[Block]]:
        """Blocks numbered <= `height` not handed out yet, in batches of at most about `max_events` events, so
        that hours of a busy node's files pass through bounded memory. Reading stops at the first block past
        `height` (kept for the next call); `reached` says whether one was seen (else the node may still be
        writing the blocks up to `height`)."""
        batch = [b for b in self.pending if b.number <= height]
        self.pending = [b for b in self.pending if b.number > height]
        events = sum(len(b.events) for b in batch)
        if not self.pending:
            for block in self._read_more():
                if block.number > height:
                    self.pending.append(block)
                    break
                batch.append(block)
                events += len(block.events)
                if events >= max_events:
                    self.last_block = max(self.last_block, batch[-1].number)
                    yield batch
                    batch, events = [], 0
        if batch:
            self.last_block = max(self.last_block, batch[-1].number)
            yield batch
        self.reached = bool(self.pending) or self.last_block >= height

    def until(self, height: int) -> tuple[list[Block], bool]:
        """Blocks numbered <= `height` not handed out yet, and whether the stream has reached `height` (a
        block past it was seen; otherwise the node may still be writing the rest)."""
        taken = [b for batch in self.batches(height) for b in batch]
        return taken, self.reached

    def state(self) -> dict[str, Any]:
        """Where to resume: at the first block read but not handed out yet."""
        if self.pending:
            return {"file": self.pending[0].file, "offset": self.pending[0].offset, "last_block": self.last_block}
        return {"file": self.file, "offset": self.offset, "last_block": self.last_block}

    def restore(self, state: dict[str, Any]) -> None:
        self.file, self.offset, self.last_block = (
            state.get("file"),
            int(state.get("offset", 0)),
            int(state.get("last_block", 0)),
        )
        self.pending = []


# ------------------------------------------------------------------ fills

_FILL_COLUMNS = (
    "address",
    "coin",
    "px",
    "sz",
    "side",
    "time",
    "start_position",
    "dir",
    "closed_pnl",
    "fee",
    "tid",
    "liquidation",
)


def _f(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not finite")
    return number


def fills_table(blocks: list[Block], perp_coins: set[str], skips: Skips | None = None) -> pa.Table:
    """The perp fills of `blocks` as a FILLS table (spot fills, `@107` or `PURR/USDC`, are left out). A fill
    that cannot be read is skipped and counted in `skips`; the others are kept."""
    cols: dict[str, list[Any]] = {f.name: [] for f in FILLS}
    skips = skips if skips is not None else Skips()
    for block in blocks:
        for i, event in enumerate(block.events):
            try:
                user, fill = event
                coin = fill["coin"]
                if coin not in perp_coins:
                    continue
                liquidation = fill.get("liquidation")
                row = (
                    str(user),
                    coin,
                    _f(fill["px"]),
                    _f(fill["sz"]),
                    str(fill["side"]),
                    int(fill["time"]),
                    _f(fill["startPosition"]),
                    str(fill.get("dir") or ""),
                    _f(fill.get("closedPnl", 0)),
                    _f(fill.get("fee", 0)),
                    int(fill["tid"]),
                    isinstance(liquidation, dict) and liquidation.get("liquidatedUser", user) == user,
                )
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                skips.add(
                    "fills that are not [user, fill]", f"block {block.number} event {i}: {type(e).__name__}: {e!s:.60}"
                )
                continue
            # a real fill carries its block's time; one stamped a day after it or 400 days before is garbage that
            # would fail the state update whole (validate's window), so it is skipped here (the window is wide
            # because our simulated node writes an interval's fills, and genesis's months-old opens, in one block)
            first, last = fill_window(block.time_ms)
            if not first <= row[5] <= last:
                skips.add(
                    "fills stamped a day after their block or 400 days before",
                    f"block {block.number} event {i}: time {row[5]}, block at {block.time_ms}",
                )
                continue
            for name, value in zip(_FILL_COLUMNS, row, strict=True):
                cols[name].append(value)
    arrays = {name: pa.array(values) for name, values in cols.items()}
    arrays["time"] = pa.array(np.array(cols["time"], np.int64)).cast(FILLS.field("time").type)
    return pa.table({f.name: arrays[f.name].cast(f.type) for f in FILLS}, schema=FILLS)


# ------------------------------------------------------------------ misc events


@dataclass
class Flows:
    """Money moved in `blocks`: USDC into (+) or out of (-) perp accounts, HYPE into or out of staking."""

    usdc_user: list[str] = field(default_factory=list)
    usdc: list[float] = field(default_factory=list)
    staking_user: list[str] = field(default_factory=list)
    staking: list[float] = field(default_factory=list)
    funding_events: int = 0

    def add(self, other: Flows) -> None:
        """Append another batch's flows (in order)."""
        self.usdc_user += other.usdc_user
        self.usdc += other.usdc
        self.staking_user += other.staking_user
        self.staking += other.staking
        self.funding_events += other.funding_events

    def move(self, user: Any, amount: float) -> None:
        if isinstance(user, str) and amount:
            self.usdc_user.append(user.lower())
            self.usdc.append(amount)


def _amount(delta: dict[str, Any]) -> float:
    """The USDC a ledger update moves: `usdc`, else `usdcValue`, else `amount` (the field names vary by type)."""
    for name in ("usdc", "usdcValue", "amount"):
        if name in delta:
            return _f(delta[name])
    raise KeyError("usdc")


# ledger updates that move no USDC into or out of a perp account (spot only, or losses that are PnL)
NO_PERP_FLOW = frozenset(
    {
        "spotTransfer",
        "rewardsClaim",
        "liquidation",
        "spotGenesis",
        "accountActivationGas",
        "deployGasAuction",
        "cStakingTransfer",
        "borrowLend",
    }
)


def _ledger(flows: Flows, users: list[Any], delta: dict[str, Any], skips: Skips, where: str) -> None:
    """Book one ledger update: USDC into (+) or out of (-) the perp accounts it touches, so that money moved is
    never taken for PnL. A type not known here is counted (it may move money hyperscope cannot see)."""
    kind = delta.get("type")
    first = users[0] if users else delta.get("user")
    if kind == "deposit":
        flows.move(first, _f(delta["usdc"]))
    elif kind == "withdraw":
        flows.move(first, -_f(delta["usdc"]))
    elif kind in ("accountClassTransfer", "perpDexClassTransfer"):  # between a wallet's spot and perp accounts
        amount = _amount(delta)
        if "toPerp" in delta:
            flows.move(delta.get("user", first), amount if delta.get("toPerp") else -amount)
    elif kind in ("internalTransfer", "subAccountTransfer"):
        amount = _amount(delta)
        flows.move(delta.get("user", first), -amount)
        flows.move(delta.get("destination"), amount)
    elif kind == "send":
        amount = _amount(delta)
        if delta.get("sourceDex", "spot") != "spot":
            flows.move(delta.get("user", first), -amount)
        if delta.get("destinationDex", "spot") != "spot":
            flows.move(delta.get("destination"), amount)
    elif kind in ("vaultDeposit", "vaultCreate"):
        flows.move(delta.get("user", first), -_amount(delta))
    elif kind == "vaultWithdraw":
        flows.move(delta.get("user", first), _f(delta.get("netWithdrawnUsd", delta.get("requestedUsd", 0))))
    elif kind in ("vaultDistribution", "vaultLeaderCommission"):
        flows.move(delta.get("user", first), _amount(delta))
    elif kind not in NO_PERP_FLOW:
        skips.add("ledger updates of an unknown type", f"{where}: {str(kind)[:40]}")


def flows_of(blocks: list[Block], skips: Skips | None = None) -> Flows:
    """The money moved in `blocks`; an event that cannot be read is skipped and counted in `skips`."""
    flows = Flows()
    skips = skips if skips is not None else Skips()
    for block in blocks:
        for i, event in enumerate(block.events):
            where = f"block {block.number} event {i}"
            try:
                inner = event["inner"]
                ((tag, body),) = inner.items()
                if tag == "LedgerUpdate":
                    one = Flows()  # applied only once the whole event was read
                    _ledger(one, body.get("users") or [], body["delta"], skips, where)
                    flows.usdc_user += one.usdc_user
                    flows.usdc += one.usdc
                elif tag == "CDeposit":
                    user, amount = body["user"].lower(), _f(body["amount"])
                    flows.staking_user.append(user)
                    flows.staking.append(amount)
                elif tag == "CWithdrawal":
                    # sent twice: queued (is_finalized false), then done; the HYPE stays staked until then,
                    # so it leaves once, at the finalized one (a line without the flag counts as finalized)
                    if body.get("is_finalized", True) is not False:
                        user, amount = body["user"].lower(), -_f(body["amount"])
                        flows.staking_user.append(user)
                        flows.staking.append(amount)
                elif tag == "Funding":
                    flows.funding_events += 1
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                skips.add("misc events of an unknown shape", f"{where}: {type(e).__name__}: {e!s:.60}")
    return flows
