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

The rooms: `rawstate.py` (what is kept: raw columns), `walk.py` (the cursor), `reader.py` (the main walk),
`side.py` (spot balances and account modes, read by a helper process for big files), `addresses.py` (the
wallets' addresses, resolved in bulk).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgpack

from hyperscope.sources.hyperliquid.rawstate import (
    LEV_CROSS,
    LEV_DEFAULT,
    LEV_ISOLATED,
    MODE_CODES,
    MODE_DEFAULT,
    MODE_DEX_ABSTRACTION,
    MODE_NAMES,
    MODE_PORTFOLIO,
    MODE_UNIFIED,
    Clearinghouse,
    InvalidSnapshot,
    Snapshot,
    Tier,
)
from hyperscope.sources.hyperliquid.reader import Reader, _positions
from hyperscope.sources.hyperliquid.side import Helper, peak_bytes
from hyperscope.sources.hyperliquid.walk import UNREADABLE, Walker

__all__ = [
    "LEV_CROSS",
    "LEV_DEFAULT",
    "LEV_ISOLATED",
    "MODE_CODES",
    "MODE_DEFAULT",
    "MODE_DEX_ABSTRACTION",
    "MODE_NAMES",
    "MODE_PORTFOLIO",
    "MODE_UNIFIED",
    "Clearinghouse",
    "InvalidSnapshot",
    "Snapshot",
    "Tier",
    "_positions",
    "height_of",
    "peak_bytes",
    "read_snapshot",
    "users_with_positions",
]


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


PARALLEL_FROM_BYTES = 64 * 1024 * 1024  # files this big have their side sections read in a second process


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
    helper = Helper.start(path, height) if parallel else None
    with path.open("rb") as f, _gc_paused():
        reader = Reader(f, height, side_elsewhere=helper is not None)
        try:
            snapshot = reader.read(helper)
        except InvalidSnapshot:
            raise
        except UNREADABLE as e:
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


def users_with_positions(path: Path) -> list[str]:
    """Every clearinghouse's `user_states.users_with_positions` of one snapshot: a cheap pass that skips the
    user states themselves (the address universe of `--source info` next to a node)."""
    height = height_of(path) or 0
    found: dict[bytes, None] = {}
    with path.open("rb") as f, _gc_paused():
        reader = Walker(f, height)
        u = reader.unpacker

        def holders() -> None:
            found.update((_address(a), None) for a in u.unpack())

        def clearinghouses() -> None:
            for _ in range(reader.array("cls")):
                reader.only(
                    "a clearinghouse",
                    b"user_states",
                    lambda: reader.only("user_states", b"users_with_positions", holders),
                )

        def at_locus() -> None:
            reader.only("locus", b"cls", clearinghouses)

        try:
            reader.to_locus(at_locus)
        except (msgpack.UnpackException, ValueError, TypeError) as e:
            raise InvalidSnapshot(f"snapshot {height}: unreadable at {reader.where()}: {e}") from e
    return [a.decode() for a in found]
