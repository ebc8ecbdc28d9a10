"""Wallet addresses of a snapshot, kept as bytes blobs while the file is walked and resolved in bulk: every
occurrence parsed to 20 bytes (either case, either form), one encoding into the distinct wallets, and the
distinct ones written back as lower-case `0x` text without a Python object each."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_NIBBLE = np.full(256, 255, np.uint8)
_NIBBLE[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16, dtype=np.uint8)
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", np.uint8)
# two hex characters (read as one little-endian uint16) -> their byte value, or 256 when not hex
_PAIR = (_NIBBLE.astype(np.uint16)[np.arange(65536) & 0xFF] << 4) | _NIBBLE.astype(np.uint16)[np.arange(65536) >> 8]
_PAIR[(_NIBBLE[np.arange(65536) & 0xFF] == 255) | (_NIBBLE[np.arange(65536) >> 8] == 255)] = 256


class Addresses:
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

    def piece(self, i: int) -> bytes:
        lengths = np.concatenate(self.lengths)
        end = int(np.cumsum(lengths)[i])
        return b"".join(self.blobs)[end - int(lengths[i]) : end]


def encode(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def keys20(rows: np.ndarray) -> pa.Array:
    """(m, 20) address bytes as an Arrow fixed-size binary array (no copy)."""
    rows = np.ascontiguousarray(rows)
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(20), rows.shape[0], [None, pa.py_buffer(rows)])


def hex_array(raw: np.ndarray) -> pa.Array:
    """(m, 20) address bytes -> an Arrow string array of lower-case `0x` + 40 hex digits, without Python objects."""
    m = raw.shape[0]
    text = np.empty((m, 42), np.uint8)
    text[:, 0], text[:, 1] = ord("0"), ord("x")
    text[:, 2::2], text[:, 3::2] = _HEX_DIGITS[raw >> 4], _HEX_DIGITS[raw & 15]
    offsets = pa.py_buffer((np.arange(m + 1, dtype=np.int32) * 42).tobytes())
    return pa.Array.from_buffers(pa.string(), m, [None, offsets, pa.py_buffer(text.tobytes())])
