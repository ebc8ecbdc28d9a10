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


def encode(table: pa.Table, types: list[str]) -> list[memoryview]:
    """The COPY ... FROM STDIN (FORMAT BINARY) payload of `table`, whose columns have these PostgreSQL types,
    as consecutive pieces (written one after the other; never joined into one copy).

    Rows are grouped by which of their fixed-width fields are NULL (a NULL has no value bytes, so each group
    has one fixed row layout; most tables have one group, open positions two: with and without a liquidation
    price). Rows keep their order within a group; the order of rows in a table carries no meaning."""
    n = table.num_rows
    columns = [_Column(_column(column), pg_type) for column, pg_type in zip(table.columns, types, strict=True)]
    nullable = [c for c in columns if c.valid is not None and c.fixed]
    if not nullable:
        return [memoryview(HEADER), _rows(columns, None, n), memoryview(TRAILER)]
    pattern = np.zeros(n, np.int64)
    for bit, column in enumerate(nullable):
        pattern |= (~column.valid).astype(np.int64) << bit  # type: ignore[operator]
    kinds = np.unique(pattern)
    if len(kinds) == 1:
        return [memoryview(HEADER), _rows(columns, None, n), memoryview(TRAILER)]
    groups = [np.flatnonzero(pattern == kind) for kind in kinds]
    parts = [_rows(columns, rows, len(rows)) for rows in groups]
    return [memoryview(HEADER), *parts, memoryview(TRAILER)]


class _Column:
    """One column as numpy: its values (None for all-empty text), per-row lengths, validity."""

    def __init__(self, array: pa.Array, pg_type: str) -> None:
        n = len(array)
        self.valid = None if array.null_count == 0 else np.asarray(pc.is_valid(array).to_numpy(zero_copy_only=False))
        self.fixed = pg_type in FIXED
        self.sizes: np.ndarray | None = None
        if self.fixed:
            arrow_type, self.dtype = FIXED[pg_type]
            typed = array.cast(arrow_type)
            if typed.null_count:
                typed = typed.fill_null(False if arrow_type == pa.bool_() else 0)
            self.values: np.ndarray | None = np.asarray(typed.to_numpy(zero_copy_only=False))
            self.width = np.dtype(self.dtype).itemsize
        elif pg_type in TEXT:
            text = array.cast(pa.large_string())
            offsets = np.frombuffer(text.buffers()[1], np.int64)[text.offset : text.offset + n + 1]
            self.sizes = np.diff(offsets)
            self.width = int(self.sizes.max()) if n else 0
            self.dtype = f"S{self.width}"
            self.values = None
            if self.width:
                data = np.frombuffer(text.buffers()[2], np.uint8)
                padded = data[np.minimum(offsets[:-1, None] + np.arange(self.width), len(data) - 1)]
                self.values = padded.view(self.dtype)[:, 0]
        else:
            raise ValueError(f"no binary COPY encoding for PostgreSQL type {pg_type!r}")


def _rows(columns: list[_Column], rows: np.ndarray | None, n: int) -> memoryview:
    """The binary rows of `rows` (all `n` when None), in order. Every row is first laid out at its widest (each
    text at the column's longest, each NULL text with its value bytes) as one packed numpy record, written a
    whole column at a time; a byte mask then drops text padding and NULL text bytes, when there are any. A
    fixed-width column is NULL in every one of the rows or in none (`encode` groups them so)."""

    def pick(values: np.ndarray) -> np.ndarray:
        return values if rows is None else values[rows]

    layout: list[tuple[str, str]] = [("count", ">i2")]
    fields: list[tuple[np.ndarray | int, np.ndarray | None, np.ndarray | None]] = []  # lengths, values, kept bytes
    for i, column in enumerate(columns):
        valid = None if column.valid is None else pick(column.valid)
        if column.fixed:
            if valid is not None and not valid.any():  # NULL in every row of this group: no value bytes
                layout.append((f"n{i}", ">i4"))
                fields.append((-1, None, None))
                continue
            layout += [(f"n{i}", ">i4"), (f"v{i}", column.dtype)]
            fields.append((column.width, pick(column.values), None))  # type: ignore[arg-type]
            continue
        sizes = pick(column.sizes)  # type: ignore[arg-type]
        lengths = sizes if valid is None else np.where(valid, sizes, -1)
        if column.values is None:
            layout.append((f"n{i}", ">i4"))
            fields.append((lengths, None, None))
            continue
        keep = (
            None
            if (valid is None and sizes.min(initial=column.width) == column.width)
            else (np.arange(column.width) < np.where(lengths < 0, 0, lengths)[:, None])
        )
        layout += [(f"n{i}", ">i4"), (f"v{i}", column.dtype)]
        fields.append((lengths, pick(column.values), keep))
    records = np.empty(n, np.dtype(layout))
    records["count"] = len(columns)
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
    data = records.view(np.uint8)
    return (data if mask is None else data.reshape(n, -1)[mask]).data
