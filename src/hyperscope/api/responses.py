"""A JSON response whose body is encoded once with orjson (no jsonable_encoder pass), and a small cache."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
from starlette.responses import Response


class JSONBytes(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class ResponseCache:
    """Encoded bodies keyed by (request, latest height): data only changes when a state update lands."""

    def __init__(self, size: int = 4096, ttl_seconds: float = 60.0) -> None:
        self.size = size
        self.ttl = ttl_seconds
        self._items: OrderedDict[tuple, tuple[float, bytes]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get_or_build(self, key: tuple, build: Callable[[], Any]) -> bytes:
        now = time.monotonic()
        item = self._items.get(key)
        if item is not None and now - item[0] < self.ttl:
            self._items.move_to_end(key)
            self.hits += 1
            return item[1]
        self.misses += 1
        body = orjson.dumps(build(), option=orjson.OPT_SERIALIZE_NUMPY)
        self._items[key] = (now, body)
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return body
