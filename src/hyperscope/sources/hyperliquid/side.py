"""The side walk: spot balances (`locus.scl`) and account modes (`locus.ust`), the two largest sections after
the clearinghouses. A big file has them read by a helper process while the main one reads the rest
(reader.py); a small one, or one whose helper failed, in the same process."""

from __future__ import annotations

import gc
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from hyperscope.sources.hyperliquid.addresses import Addresses
from hyperscope.sources.hyperliquid.rawstate import MODE_CODES, MODE_NAMES, InvalidSnapshot
from hyperscope.sources.hyperliquid.skips import Skips
from hyperscope.sources.hyperliquid.walk import CHUNK, UNREADABLE, Walker

log = logging.getLogger("hyperscope.sources.hyperliquid")


def _mode_code(mode: Any) -> int:
    """One `ust` mode as its MODE_* code (-1: a mode no reader knows)."""
    if isinstance(mode, dict) and mode:
        mode = next(iter(mode))
    return MODE_CODES.get(mode, -1) if type(mode) is bytes else -1


def _spot_rows(chunk: list[Any]) -> tuple[list[Any], np.ndarray, np.ndarray, np.ndarray]:
    """Some `scl.user_states` entries as the addresses of the users holding a non-zero balance and, per such
    balance, its user's place among them, its token and total; ValueError and its kin when one does not fit."""
    rows = [
        (k, token, balance[b"t"] if type(balance) is dict else balance)
        for k, pair in enumerate(chunk)
        for token, balance in (pair[1].get(b"b") or ())
    ]
    table = np.array(rows, np.int64).reshape(-1, 3)  # ValueError or TypeError when one is not an integer
    table = table[table[:, 2] != 0]
    holders = np.unique(table[:, 0])
    return [chunk[k][0] for k in holders.tolist()], np.searchsorted(holders, table[:, 0]), table[:, 1], table[:, 2]


@dataclass
class Side:
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


def side_worker(path: str, height: int, conn: Any) -> None:
    """In the helper process: walk `locus.scl` and `locus.ust` and send what they hold (or why they do not fit)."""
    gc.disable()
    try:
        with open(path, "rb") as f:  # noqa: PTH123
            reader = SideWalker(f, height)
            try:
                reader.to_locus(reader.locus)
            except InvalidSnapshot:
                raise
            except UNREADABLE as e:
                raise InvalidSnapshot(
                    f"snapshot {height}: unreadable at {reader.where()}: {type(e).__name__}: {e}"
                ) from e
        side = reader.side()
        arrays = [np.ascontiguousarray(getattr(side, name)) for name in Side.ARRAYS]
        conn.send(
            (
                "ok",
                side.account_modes,
                dict(side.skips.counts),
                side.skips.first,
                peak_bytes(),
                [(a.shape, a.dtype.str) for a in arrays],
            )
        )
        for a in arrays:
            conn.send_bytes(a.data.cast("B") if a.size else b"")
    except InvalidSnapshot as e:
        conn.send(("invalid", e.message))
    finally:
        conn.close()


class SideWalker(Walker):
    """Reads `locus.scl` and `locus.ust` and passes over everything else."""

    def __init__(self, f: BinaryIO, height: int) -> None:
        super().__init__(f, height)
        self.spot_found = Addresses()  # spot balances' addresses, and per balance (occurrence, token, total)
        self.spot_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.account_modes: dict[str, int] = {}
        self.modes_found = Addresses()  # `ust` addresses, and their mode codes
        self.mode_codes: list[np.ndarray] = []

    def locus(self) -> None:
        for key in self.entries("locus"):
            if key in (b"scl", b"ust"):
                self.side_section(key)
            else:
                self.skip()

    def side_section(self, key: bytes) -> None:
        if key == b"scl":
            self.spot_balances()
        else:
            self.account_mode_counts()

    def side(self) -> Side:
        """The spot balances and account modes this reader walked: one address per user with a balance (as 20
        bytes) and per balance its user's row among them, token and total; each mode's address (20 bytes) and
        code. A balance or mode whose address is not one is skipped and counted."""
        raw, ok = self.spot_found.raw20_ok()
        users, tokens, totals = (
            np.concatenate([np.zeros(0, np.int64)] + [r[k] for r in self.spot_rows]) for k in range(3)
        )
        if not ok.all():
            bad = int(np.argmax(~ok))
            self.skips.add(
                "spot balances that could not be read",
                f"locus.scl: {self.spot_found.piece(bad)!r:.60} is not an address",
                int((~ok[users]).sum()),
            )
            keep = ok[users]
            compact = np.cumsum(ok) - 1
            raw, users, tokens, totals = raw[ok], compact[users[keep]], tokens[keep], totals[keep]
        mode_raw, mode_ok = self.modes_found.raw20_ok()
        codes = np.concatenate(self.mode_codes) if self.mode_codes else np.zeros(0, np.int8)
        if not mode_ok.all():
            bad = int(np.argmax(~mode_ok))
            self.skips.add(
                "account modes that could not be read",
                f"locus.ust: {self.modes_found.piece(bad)!r:.60} is not an address",
                int((~mode_ok).sum()),
            )
            mode_raw, codes = mode_raw[mode_ok], codes[mode_ok]
        keep = codes > 0  # the default mode changes nothing
        return Side(
            spot_raw=raw,
            spot_user=users,
            spot_token=tokens,
            spot_total=totals,
            mode_raw=mode_raw[keep],
            mode_code=codes[keep],
            account_modes=self.account_modes,
            skips=self.skips,
            peak_bytes=peak_bytes(),
        )

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
                            self.skips.add(
                                "spot balances that could not be read",
                                f"{self.where()}[{done + k}]: {type(e).__name__}: {e!s:.60}",
                            )
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
                        self.skips.add(
                            "account modes that could not be read",
                            f"{self.where()}[{done + i}]: {type(e).__name__}: {e!s:.60}",
                        )
                        continue
                    self.modes_found.add([address])
                    modes.append(code)
            counts.update(modes)
            self.mode_codes.append(np.array(modes, np.int8))
            done += k
        for code, count in counts.items():
            name = MODE_NAMES.get(code, "unknown")
            self.account_modes[name] = self.account_modes.get(name, 0) + count


class Helper:
    """A helper process walking `locus.scl` and `locus.ust` while this one reads the rest."""

    def __init__(self, path: Path, process: Any, conn: Any) -> None:
        self.path, self.process, self.conn = path, process, conn

    @classmethod
    def start(cls, path: Path, height: int) -> Helper | None:
        import multiprocessing

        try:
            context = multiprocessing.get_context("spawn")  # no fork: the parent may run threads
            parent, child = context.Pipe(duplex=False)
            process = context.Process(target=side_worker, args=(str(path), height, child), daemon=True)
            process.start()
            child.close()
        except OSError as e:
            log.warning("could not start a helper process (%s); reading the snapshot in one", e)
            return None
        return cls(path, process, parent)

    def result(self) -> Side | str | None:
        """The side walk's result, the reason the snapshot was rejected (str), or None when the helper failed."""
        try:
            head = self.conn.recv()
            if head[0] == "invalid":
                return str(head[1])
            _, modes, counts, first, peak, layout = head
            arrays = {}
            for name, (shape, dtype) in zip(Side.ARRAYS, layout, strict=True):
                arrays[name] = np.frombuffer(self.conn.recv_bytes(), np.dtype(dtype)).reshape(shape)
        except (EOFError, OSError, ValueError) as e:
            log.warning("snapshot helper process: %s", e)
            return None
        return Side(**arrays, account_modes=modes, skips=Skips(Counter(counts), dict(first)), peak_bytes=peak)

    def close(self) -> None:
        self.conn.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
