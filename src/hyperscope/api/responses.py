"""A JSON response whose body is encoded once with orjson (no jsonable_encoder pass), and a small cache."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
from starlette.responses import JSONResponse


class JSONBytes(JSONResponse):
    """JSON encoded once with orjson (bytes pass through as they are). A JSONResponse, so that FastAPI
    documents the route's response model in the OpenAPI document."""

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class ResponseCache:
    """Encoded bodies of the newest state update, bounded by bytes and by age.

    Data only changes when a state update lands, so a new height empties the cache at once. Entries live
    at most `ttl_seconds` and are kept in creation order, so the oldest are dropped first, whether for
    age or for room; an entry larger than the whole budget is served but not kept.
    """

    OVERHEAD = 256  # bytes an entry costs beyond its body (key tuple, list, floats)

    def __init__(self, max_bytes: int, ttl_seconds: float = 60.0) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl_seconds
        self._items: OrderedDict[tuple, tuple[float, bytes]] = OrderedDict()
        self._height: int | None = None
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get_or_build(self, height: int | None, key: tuple, build: Callable[[], Any]) -> bytes:
        if height != self._height:
            self.clear()
            self._height = height
        now = time.monotonic()
        item = self._items.get(key)
        if item is not None and now - item[0] < self.ttl:
            self.hits += 1
            return item[1]
        self.misses += 1
        built = build()
        body = built if isinstance(built, bytes) else orjson.dumps(built, option=orjson.OPT_SERIALIZE_NUMPY)
        if item is not None:
            self._drop(key)
        self._expire(now)
        size = len(body) + self.OVERHEAD
        if size <= self.max_bytes:
            while self.bytes + size > self.max_bytes:
                self._drop(next(iter(self._items)))
            self._items[key] = (now, body)
            self.bytes += size
        return body

    def peek(self, height: int | None, key: tuple) -> bytes | None:
        """The body kept for `key` at state update `height`, or None (never builds)."""
        if height != self._height:
            return None
        item = self._items.get(key)
        if item is None or time.monotonic() - item[0] >= self.ttl:
            return None
        self.hits += 1
        return item[1]

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0

    def _drop(self, key: tuple) -> None:
        _, body = self._items.pop(key)
        self.bytes -= len(body) + self.OVERHEAD

    def _expire(self, now: float) -> None:
        while self._items:
            key, (created, _) = next(iter(self._items.items()))
            if now - created < self.ttl:
                return
            self._drop(key)
