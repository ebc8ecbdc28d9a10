"""Stable position ids: the 64-hex sha256 of "{address}|{coin}|{openTime as epoch ms}".

SHA-256 of a whole column is computed by DuckDB's sha256() (C++, vectorised) so that the ingest path needs no
Python loop per position. `tests/domain/test_formulas.py` checks it against hashlib.
"""

from __future__ import annotations

import hashlib
import threading

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SMALL = 256  # below this many messages, hashlib one by one is faster than a query
_engine = threading.local()  # an in-memory DuckDB per thread: its sha256() hashes a column in C++


def sha256_hex(messages: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Hex sha256 digest of every element of a string/binary Arrow array (nulls are not allowed).

    Vectorised by DuckDB's sha256() over the Arrow column (no Python loop per message): about 0.1 s for
    200,000 position keys on this machine, where numpy rounds took 2.6 s."""
    if isinstance(messages, pa.ChunkedArray):
        messages = messages.combine_chunks()
    messages = messages.cast(pa.binary()) if not pa.types.is_binary(messages.type) else messages
    n = len(messages)
    if n == 0:
        return pa.array([], type=pa.string())
    if messages.null_count:
        raise ValueError("sha256_hex: null message")
    if n <= SMALL:  # a page's worth
        return pa.array([hashlib.sha256(m).hexdigest() for m in messages.to_pylist()], type=pa.string())
    con = getattr(_engine, "con", None)
    if con is None:
        con = _engine.con = duckdb.connect(":memory:", config={"threads": 1})
    con.register("incoming", pa.table({"m": messages}))
    try:
        digests = con.sql("SELECT sha256(m) AS h FROM incoming").to_arrow_table().column("h")
    finally:
        con.unregister("incoming")
    return digests.combine_chunks().cast(pa.string())


def position_ids(address: pa.Array, coin: pa.Array, open_time_ms: pa.Array) -> pa.Array:
    """Position ids for aligned arrays of addresses, coins and open times (epoch ms)."""
    ms = pc.cast(open_time_ms, pa.int64()).cast(pa.string())
    keys = pc.binary_join_element_wise(address, coin, ms, "|")
    return sha256_hex(keys)


_NIBBLE = np.zeros(256, np.int64)
_NIBBLE[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_NIBBLE[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_NIBBLE[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


def wallet_key(address: str) -> int:
    """`wallet_keys` of one address."""
    return int(address[2:17], 16)


def wallet_keys(addresses: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A wallet's integer key: the first 60 bits of its 0x address (hex digits 3 to 17) as int64.

    Addresses are hashes, so the key is as good as unique; filtering by an integer scans far less than by
    42-character strings. Vectorised (no loop per address); the DuckDB store computes the same in SQL."""
    heads = pc.utf8_slice_codeunits(addresses, 2, 17)
    if isinstance(heads, pa.ChunkedArray):
        heads = heads.combine_chunks()
    heads = heads.cast(pa.large_string())
    offsets = np.frombuffer(heads.buffers()[1], np.int64)[heads.offset : heads.offset + len(heads) + 1]
    data = np.frombuffer(heads.buffers()[2], np.uint8) if len(heads) else np.zeros(0, np.uint8)
    if len(heads) and not np.all(np.diff(offsets) == 15):
        raise ValueError("every address needs at least 17 characters (0x and 15 hex digits)")
    digits = _NIBBLE[data[offsets[0] : offsets[0] + 15 * len(heads)]].reshape(len(heads), 15)
    return (digits << (4 * np.arange(14, -1, -1, dtype=np.int64))).sum(axis=1).astype(np.int64)
