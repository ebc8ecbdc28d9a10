"""Arrow tables as PostgreSQL's binary COPY stream, built with numpy (no Python loop per row).

The binary format is a header, then per row a big-endian int16 field count and per field an int32 length
(-1 for NULL) followed by the value in the type's binary send format, then an int16 -1 trailer. Fixed-width
types (int2, int4, int8, float8, bool) are the value's big-endian bytes; text is its UTF-8 bytes. The column
types must match the target table's exactly (binary COPY does not cast), so callers pass them.
"""

from __future__ import annotations

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
    """The COPY ... FROM STDIN (FORMAT BINARY) payload of `table`, whose columns have these PostgreSQL types.

    Every row is first laid out at its widest (each text at the column's longest, each NULL with its value
    bytes) as one packed numpy record, written a whole column at a time; a byte mask then drops the padding
    and the NULLs' value bytes in a single pass, leaving each row exactly as the format wants it."""
    n = table.num_rows
    layout: list[tuple[str, str]] = [("count", ">i2")]
    fields: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = []  # lengths, values, kept bytes
    for i, (column, pg_type) in enumerate(zip(table.columns, types, strict=True)):
        array = _column(column)
        valid = None if array.null_count == 0 else np.asarray(pc.is_valid(array).to_numpy(zero_copy_only=False))
        if pg_type in FIXED:
            arrow_type, dtype = FIXED[pg_type]
            typed = array.cast(arrow_type)
            if typed.null_count:
                typed = typed.fill_null(False if arrow_type == pa.bool_() else 0)
            values = np.asarray(typed.to_numpy(zero_copy_only=False))
            width = np.dtype(dtype).itemsize
            lengths = np.full(n, width, np.int64) if valid is None else np.where(valid, width, -1)
            keep = None if valid is None else np.broadcast_to(valid[:, None], (n, width))
        elif pg_type in TEXT:
            text = array.cast(pa.large_string())
            offsets = np.frombuffer(text.buffers()[1], np.int64)[text.offset : text.offset + n + 1]
            sizes = np.diff(offsets)
            width = int(sizes.max()) if n else 0
            lengths = sizes if valid is None else np.where(valid, sizes, -1)
            if width == 0:
                layout.append((f"n{i}", ">i4"))
                fields.append((lengths, None, None))
                continue
            data = np.frombuffer(text.buffers()[2], np.uint8)
            padded = data[np.minimum(offsets[:-1, None] + np.arange(width), len(data) - 1)]
            values = padded.view(f"S{width}")[:, 0]
            dtype = f"S{width}"
            keep = None if sizes.min() == width else np.arange(width) < sizes[:, None]
        else:
            raise ValueError(f"no binary COPY encoding for PostgreSQL type {pg_type!r}")
        layout += [(f"n{i}", ">i4"), (f"v{i}", dtype)]
        fields.append((lengths, values, keep))
    records = np.empty(n, np.dtype(layout))
    records["count"] = len(types)
    mask: np.ndarray | None = None
    names = [name for name, _ in layout[1:] if name.startswith("n")]
    for name, (field_lengths, field_values, keep) in zip(names, fields, strict=True):
        records[name] = field_lengths
        if field_values is None:
            continue
        value = "v" + name[1:]
        records[value] = field_values
        if keep is not None:
            if mask is None:
                mask = np.ones((n, records.dtype.itemsize), bool)
            at = records.dtype.fields[value][1]  # type: ignore[index]
            mask[:, at : at + keep.shape[1]] = keep
    rows = records.view(np.uint8)
    body = rows.tobytes() if mask is None else rows.reshape(n, -1)[mask].tobytes()
    return HEADER + body + TRAILER
