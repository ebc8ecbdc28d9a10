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


MAX_GROUPS = 32  # past this many row layouts, one byte mask over all rows is cheaper than a pass per layout


def encode(table: pa.Table, types: list[str]) -> list[memoryview]:
    """The COPY ... FROM STDIN (FORMAT BINARY) payload of `table`, whose columns have these PostgreSQL types,
    as consecutive pieces (written one after the other; never joined into one copy)."""
    return [memoryview(HEADER), *encode_rows(table, types), memoryview(TRAILER)]


def encode_rows(table: pa.Table, types: list[str]) -> list[memoryview]:
    """The rows of a binary COPY payload, without its header and trailer: a stream may carry several of these
    between one header and one trailer.

    Rows are grouped by their layout: which fields are NULL (a NULL has no value bytes) and how long each text
    is, so that each group is one packed record per row, written a whole column at a time (open positions
    have two groups, with and without a liquidation price, times the lengths of their coin names). Past
    MAX_GROUPS layouts, rows are grouped by their NULL fixed-width fields only and a byte mask drops text
    padding. Rows keep their order within a group; the order of rows in a table carries no meaning."""
    n = table.num_rows
    columns = [_Column(_column(column), pg_type) for column, pg_type in zip(table.columns, types, strict=True)]
    nulls = _layouts([c.valid for c in columns if c.valid is not None and c.fixed], n)
    texts = [c.sizes if c.valid is None else np.where(c.valid, c.sizes, -1) for c in columns if c.varying]
    layouts = _layouts(texts, n, nulls)
    groups = layouts if layouts is not None and len(np.unique(layouts)) <= MAX_GROUPS else nulls
    if groups is None:
        return [_rows(columns, None, n)]
    order = np.argsort(groups.astype(np.int16), kind="stable")  # a radix sort: few small group numbers
    for column in columns:  # each group becomes a run of consecutive rows: one gather per column in all
        column.reorder(order)
    ends = [*(np.flatnonzero(np.diff(groups[order])) + 1).tolist(), n]
    return [_rows(columns, slice(start, end), end - start) for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def _layouts(codes: list[np.ndarray], n: int, start: np.ndarray | None = None) -> np.ndarray | None:
    """One small integer per row that differs exactly where any of `codes` (validity masks or lengths)
    differs, combined onto `start`; None when every row is alike."""
    key = start
    for code in codes:
        index, count = _dense(code.astype(np.int64))
        if count == 1:
            continue
        key = index if key is None else _dense(key * count + index)[0]
    return None if key is None or _dense(key)[1] == 1 else key


def _dense(values: np.ndarray) -> tuple[np.ndarray, int]:
    """(each value's rank among the distinct values, how many there are) of small non-negative-offset
    integers (lengths, flags, group numbers), by counting rather than sorting."""
    if len(values) == 0:
        return values, 0
    low = int(values.min())
    present = np.bincount(values - low) > 0
    rank = np.cumsum(present) - 1
    return rank[values - low], int(present.sum())


class _Column:
    """One column as numpy: its values (fixed width) or padded bytes (text), per-row lengths, validity."""

    def __init__(self, array: pa.Array, pg_type: str) -> None:
        n = len(array)
        self.valid = None if array.null_count == 0 else np.asarray(pc.is_valid(array).to_numpy(zero_copy_only=False))
        self.fixed = pg_type in FIXED
        self.varying = False
        self.sizes: np.ndarray = np.zeros(0, np.int64)
        self.padded: np.ndarray | None = None  # text: (rows, longest) bytes, zero past each text's end
        if self.fixed:
            arrow_type, self.dtype = FIXED[pg_type]
            typed = array.cast(arrow_type)
            if typed.null_count:
                typed = typed.fill_null(False if arrow_type == pa.bool_() else 0)
            self.values = np.asarray(typed.to_numpy(zero_copy_only=False))
            self.width = np.dtype(self.dtype).itemsize
        elif pg_type in TEXT:
            text = array.cast(pa.large_string())
            offsets = np.frombuffer(text.buffers()[1], np.int64)[text.offset : text.offset + n + 1]
            self.sizes = np.diff(offsets)
            self.width = int(self.sizes.max()) if n else 0
            self.varying = n > 0 and (self.valid is not None or int(self.sizes.min()) != self.width)
            if self.width:
                data = np.frombuffer(text.buffers()[2], np.uint8)
                self.padded = data[np.minimum(offsets[:-1, None] + np.arange(self.width), len(data) - 1)]
        else:
            raise ValueError(f"no binary COPY encoding for PostgreSQL type {pg_type!r}")

    def reorder(self, order: np.ndarray) -> None:
        """The same column with its rows in `order`."""
        if self.valid is not None:
            self.valid = self.valid[order]
        if self.fixed:
            self.values = self.values[order]
        else:
            self.sizes = self.sizes[order]
            if self.padded is not None:
                self.padded = self.padded[order]


def _rows(columns: list[_Column], rows: slice | None, n: int) -> memoryview:
    """The binary rows of the run `rows` (all `n` when None), in order. Every row is laid out as one packed numpy
    record, written a whole column at a time: a fixed-width column NULL in every row has no value bytes, a
    text column is as wide as its longest text here. When a text is shorter than that, or NULL, a byte mask
    then drops the padding (`encode` groups rows so that this is rare)."""

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
            lengths: np.ndarray | int = column.width if valid is None else np.where(valid, column.width, -1)
            fields.append((lengths, pick(column.values), None))
            continue
        sizes = pick(column.sizes)
        text_lengths = sizes if valid is None else np.where(valid, sizes, -1)
        width = int(sizes.max()) if n else 0
        if width == 0 or column.padded is None:
            layout.append((f"n{i}", ">i4"))
            fields.append((text_lengths, None, None))
            continue
        values = np.ascontiguousarray(pick(column.padded)[:, :width]).view(f"S{width}")[:, 0]
        ragged = valid is not None or int(sizes.min()) != width
        keep = np.arange(width) < np.maximum(text_lengths, 0)[:, None] if ragged else None
        layout += [(f"n{i}", ">i4"), (f"v{i}", f"S{width}")]
        fields.append((text_lengths, values, keep))
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
