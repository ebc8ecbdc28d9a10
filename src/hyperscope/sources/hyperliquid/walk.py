"""Walking a MessagePack snapshot file without unpacking it whole: map keys one at a time, subtrees skipped
element by element (so the read buffer never holds a big one), and the path inside the file kept for every
message."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

import msgpack

from hyperscope.sources.hyperliquid.rawstate import InvalidSnapshot
from hyperscope.sources.hyperliquid.skips import Skips

READ_BUFFER = 8 * 1024 * 1024
CHUNK = 256  # entries handled together; small enough that their objects stay in cache
# what a file that is not the shape it should be raises while it is walked
UNREADABLE = (msgpack.UnpackException, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


class Walker:
    """The cursor over one file; `self.path` is kept up to date for error messages."""

    def __init__(self, f: BinaryIO, height: int) -> None:
        self.unpacker = msgpack.Unpacker(
            f, raw=True, strict_map_key=False, max_buffer_size=2**31 - 1, read_size=READ_BUFFER
        )
        self.height = height
        self.path: list[str] = []
        self.skips = Skips()

    def where(self) -> str:
        return "".join(p if p.startswith("[") else f".{p}" for p in self.path).lstrip(".") or "the top"

    def fail(self, message: str) -> InvalidSnapshot:
        return InvalidSnapshot(f"snapshot {self.height}: {message} at {self.where()}")

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

    def only(self, name: str, wanted: bytes, read: Callable[[], None]) -> None:
        """In the map at the cursor (`name` for messages), `read` the value of key `wanted` and skip the rest."""
        for key in self.entries(name):
            if key == wanted:
                read()
            else:
                self.skip()

    def to_locus(self, at_locus: Callable[[], None]) -> None:
        """Walk the file, skipping everything but `exchange.locus`, where `at_locus` reads on."""
        self.only("the file", b"exchange", lambda: self.only("exchange", b"locus", at_locus))
