"""The short path for cached GETs: a request the app answered from the response cache before is answered again
from it right after the key check and the rate limit, without routing, parameter parsing or dependencies.

A request qualifies by its exact path and query string: `cached()` (api/hypertracker/common.py) remembers them
with the cache key and the scope of the route that answered, once the full path has checked every parameter and
the route's scope. So the short path only ever repeats an answer the full path gave to the same request at the
same state update, with the same headers (content type and length; the rate-limit headers and the request's
metrics are added around both paths alike). A new state update, a cache miss or a key without the route's scope
falls through to the full path.
"""

from __future__ import annotations

import threading
from typing import Any

from starlette.types import Scope, Send

from hyperscope.api.responses import ResponseCache

MAX_ENTRIES = 4096  # remembered request lines; a new state update or a full table starts afresh


class FastPath:
    def __init__(self, cache: ResponseCache, max_entries: int = MAX_ENTRIES) -> None:
        self.cache = cache
        self.max_entries = max_entries
        self._entries: dict[tuple[str, bytes], tuple[int | None, tuple, str, Any]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, scope: Scope, height: int | None, key: tuple) -> None:
        """The request in `scope` was answered from the cache entry `key` at state update `height`."""
        route = scope.get("route")
        required = getattr(route, "required_scope", None)
        if required is None:
            return
        line = (scope["path"], scope.get("query_string", b""))
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[line] = (height, key, required, route)

    def body(self, scope: Scope, allows: Any, height: int | None) -> bytes | None:
        """The cached body for this request line at `height` when the key (`allows(scope name)`) may read
        it; None sends the request down the full path. Sets the route in `scope` for the metrics."""
        found = self._entries.get((scope["path"], scope.get("query_string", b"")))
        if found is None or found[0] != height or not allows(found[2]):
            return None
        body = self.cache.peek(height, found[1])
        if body is not None:
            scope["route"] = found[3]
        return body


async def send_json(send: Send, body: bytes) -> None:
    """Send a 200 JSON body as the full path's JSON responses do (content-length, then content-type)."""
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
