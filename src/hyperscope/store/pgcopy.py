"""Arrow tables as PostgreSQL's binary COPY stream, built with numpy (no Python loop per row).

The binary format is a header, then per row a big-endian int16 field count and per field an int32 length
(-1 for NULL) followed by the value in the type's binary send format, then an int16 -1 trailer. Fixed-width
types (int2, int4, int8, float8, bool) are the value's big-endian bytes; text is its UTF-8 bytes. The column
types must match the target table's exactly (binary COPY does not cast), so callers pass them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"

# PostgreSQL type (information_schema data_type) -> (Arrow type to cast to, numpy big-endian dtype)
FIXED = {
    "bigint": (pa.int64(), ">i8"),
    "integer": (pa.int32(), ">i4"),
    "smallint": (pa.int16(), ">i2"),
    "double precision": (pa.float64(), ">f8"),
    "boolean": (pa.bool_(), "u1"),
}
TEXT = ("character varying", "text")


def _column(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def encode(table: pa.Table, types: list[str]) -> bytes:
    """The COPY ... FROM STDIN (FORMAT BINARY) payload of `table`, whose columns have these PostgreSQL types."""
    n = table.num_rows
    sizes = np.full(n, 2, np.int64)  # the field count
    fields: list[tuple[np.ndarray, Any, Any]] = []  # (lengths, valid rows, fixed bytes or (offsets, data))
    for column, pg_type in zip(table.columns, types, strict=True):
        array = _column(column)
        valid = (
            np.ones(n, bool) if array.null_count == 0 else np.asarray(pc.is_valid(array).to_numpy(zero_copy_only=False))
        )
        if pg_type in FIXED:
            arrow_type, dtype = FIXED[pg_type]
            values = array.cast(arrow_type)
            if values.null_count:
                values = values.fill_null(False if arrow_type == pa.bool_() else 0)
            raw = np.asarray(values.to_numpy(zero_copy_only=False)).astype(dtype)
            width = raw.dtype.itemsize
            lengths = np.where(valid, width, -1)
            fields.append((lengths, valid, raw.view(np.uint8).reshape(n, width)))
        elif pg_type in TEXT:
            text = array.cast(pa.large_string())
            offsets = np.frombuffer(text.buffers()[1], np.int64)[text.offset : text.offset + n + 1]
            data = np.frombuffer(text.buffers()[2], np.uint8) if n and text.buffers()[2] is not None else None
            lengths = np.where(valid, np.diff(offsets), -1)
            fields.append((lengths, None, (offsets, data if data is not None else np.zeros(0, np.uint8))))
        else:
            raise ValueError(f"no binary COPY encoding for PostgreSQL type {pg_type!r}")
        sizes += 4 + np.maximum(lengths, 0)

    starts = np.empty(n, np.int64)
    if n:
        starts[0] = len(HEADER)
        np.cumsum(sizes[:-1], out=starts[1:])
        starts[1:] += len(HEADER)
    total = len(HEADER) + int(sizes.sum()) + len(TRAILER)
    buf = np.empty(total, np.uint8)
    buf[: len(HEADER)] = np.frombuffer(HEADER, np.uint8)
    buf[total - len(TRAILER) :] = np.frombuffer(TRAILER, np.uint8)
    pos = starts.copy()
    _scatter(buf, pos, np.full((n, 1), len(types), ">i2").view(np.uint8).reshape(n, 2))
    pos += 2
    for lengths, valid, payload in fields:
        _scatter(buf, pos, lengths.astype(">i4").view(np.uint8).reshape(n, 4))
        pos += 4
        if isinstance(payload, tuple):  # text: every row's bytes, back to back, moved to their rows' places
            offsets, data = payload
            counts = np.maximum(lengths, 0)
            if counts.sum():
                rows = np.repeat(np.arange(n), counts)
                within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
                buf[pos[rows] + within] = data[offsets[rows] + within]
        else:
            assert valid is not None
            _scatter(buf, pos[valid], payload[valid])
        pos += np.maximum(lengths, 0)
    return buf.tobytes()


def _scatter(buf: np.ndarray, at: np.ndarray, rows: np.ndarray) -> None:
    """Write each row of `rows` (n x width bytes) into `buf` starting at the matching offset of `at`."""
    if len(at):
        buf[(at[:, None] + np.arange(rows.shape[1])).ravel()] = rows.ravel()
