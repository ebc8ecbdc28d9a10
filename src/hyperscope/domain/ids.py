"""Stable position ids: the 64-hex sha256 of "{address}|{coin}|{openTime as epoch ms}".

SHA-256 is computed here in vectorised numpy (one pass over all messages of the same block count) so that
the ingest path needs no Python loop per position. `tests/domain/test_ids.py` checks it against hashlib.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_K = np.array(
    [
        0x428A2F98,
        0x71374491,
        0xB5C0FBCF,
        0xE9B5DBA5,
        0x3956C25B,
        0x59F111F1,
        0x923F82A4,
        0xAB1C5ED5,
        0xD807AA98,
        0x12835B01,
        0x243185BE,
        0x550C7DC3,
        0x72BE5D74,
        0x80DEB1FE,
        0x9BDC06A7,
        0xC19BF174,
        0xE49B69C1,
        0xEFBE4786,
        0x0FC19DC6,
        0x240CA1CC,
        0x2DE92C6F,
        0x4A7484AA,
        0x5CB0A9DC,
        0x76F988DA,
        0x983E5152,
        0xA831C66D,
        0xB00327C8,
        0xBF597FC7,
        0xC6E00BF3,
        0xD5A79147,
        0x06CA6351,
        0x14292967,
        0x27B70A85,
        0x2E1B2138,
        0x4D2C6DFC,
        0x53380D13,
        0x650A7354,
        0x766A0ABB,
        0x81C2C92E,
        0x92722C85,
        0xA2BFE8A1,
        0xA81A664B,
        0xC24B8B70,
        0xC76C51A3,
        0xD192E819,
        0xD6990624,
        0xF40E3585,
        0x106AA070,
        0x19A4C116,
        0x1E376C08,
        0x2748774C,
        0x34B0BCB5,
        0x391C0CB3,
        0x4ED8AA4A,
        0x5B9CCA4F,
        0x682E6FF3,
        0x748F82EE,
        0x78A5636F,
        0x84C87814,
        0x8CC70208,
        0x90BEFFFA,
        0xA4506CEB,
        0xBEF9A3F7,
        0xC67178F2,
    ],
    dtype=np.uint32,
)
_H0 = np.array(
    [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19],
    dtype=np.uint32,
)
_HEX = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), dtype=np.uint8).reshape(256, 2)


def _rotr(x: np.ndarray, n: int) -> np.ndarray:
    return (x >> np.uint32(n)) | (x << np.uint32(32 - n))


def _compress(state: np.ndarray, words: np.ndarray) -> np.ndarray:
    """One SHA-256 compression of `words` (n, 16) into `state` (n, 8)."""
    w = np.empty((words.shape[0], 64), dtype=np.uint32)
    w[:, :16] = words
    for t in range(16, 64):
        s0 = _rotr(w[:, t - 15], 7) ^ _rotr(w[:, t - 15], 18) ^ (w[:, t - 15] >> np.uint32(3))
        s1 = _rotr(w[:, t - 2], 17) ^ _rotr(w[:, t - 2], 19) ^ (w[:, t - 2] >> np.uint32(10))
        w[:, t] = w[:, t - 16] + s0 + w[:, t - 7] + s1
    a, b, c, d, e, f, g, h = (state[:, i].copy() for i in range(8))
    for t in range(64):
        t1 = h + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & g)) + _K[t] + w[:, t]
        t2 = (_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))
        h, g, f, e, d, c, b, a = g, f, e, d + t1, c, b, a, t1 + t2
    return state + np.stack([a, b, c, d, e, f, g, h], axis=1)


SMALL = 256  # below this many messages, hashlib one by one is faster than the vectorised rounds


def sha256_hex(messages: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Hex sha256 digest of every element of a string/binary Arrow array (nulls are not allowed)."""
    if isinstance(messages, pa.ChunkedArray):
        messages = messages.combine_chunks()
    messages = messages.cast(pa.binary()) if not pa.types.is_binary(messages.type) else messages
    n = len(messages)
    if n == 0:
        return pa.array([], type=pa.string())
    if messages.null_count:
        raise ValueError("sha256_hex: null message")
    if n <= SMALL:  # a page's worth: the vectorised rounds cost more than they save
        return pa.array([hashlib.sha256(m).hexdigest() for m in messages.to_pylist()], type=pa.string())
    lengths = pc.binary_length(messages).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = _concat(messages)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    nblocks = (lengths + 9 + 63) // 64
    out = np.empty((n, 64), dtype=np.uint8)
    with np.errstate(over="ignore"):
        for nb in np.unique(nblocks):
            rows = np.nonzero(nblocks == nb)[0]
            lens = lengths[rows]
            padded = np.zeros((rows.size, nb * 64), dtype=np.uint8)
            row_of_byte = np.repeat(np.arange(rows.size), lens)
            col_of_byte = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
            src = np.repeat(starts[rows], lens) + col_of_byte
            padded[row_of_byte, col_of_byte] = flat[src]
            padded[np.arange(rows.size), lens] = 0x80
            bits = (lens * 8).astype(">u8").view(np.uint8).reshape(-1, 8)
            padded[:, -8:] = bits
            words = padded.view(">u4").astype(np.uint32).reshape(rows.size, nb * 16)
            state = np.tile(_H0, (rows.size, 1))
            for block in range(int(nb)):
                state = _compress(state, words[:, block * 16 : (block + 1) * 16])
            digest = state.astype(">u4").view(np.uint8).reshape(rows.size, 32)
            out[rows] = _HEX[digest].reshape(rows.size, 64)
    return pa.array(out.view("S64").ravel(), type=pa.binary(64)).cast(pa.string())


def _concat(messages: pa.Array) -> np.ndarray:
    """All bytes of a binary array, concatenated, without a Python loop."""
    buffers = messages.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32)[messages.offset : messages.offset + len(messages) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    return data[offsets[0] : offsets[-1]]


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
