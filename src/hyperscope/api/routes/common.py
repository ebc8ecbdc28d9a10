"""Helpers every route module shares: the service, cached JSON responses and query parameters.

Query parameters are read from the request and documented through `openapi_extra` instead of being
declared as function arguments: FastAPI's per-request parameter machinery costs more than the route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request

from hyperscope.api import params
from hyperscope.api.responses import JSONBytes
from hyperscope.service import Service, Window

EXTERNAL = "/api/external"

QUERY_DOCS = {
    "start": "Start of the window (ISO 8601; a date alone is 00:00 UTC, no zone is UTC).",
    "end": "End of the window (ISO 8601); now when omitted.",
    "limit": "Rows per page, 1-1000 (default 1000).",
    "nextCursor": "The nextCursor of the previous page; keep the other parameters unchanged.",
    "positionRecencyTimeframe": "Count only positions opened within 24h, 7d, 30d or all (default).",
    "openedWithin": "Count only positions opened within 24h, 7d, 30d or all (default).",
    "offset": "Items to skip (default 0).",
}
SERIES = ("start", "end", "limit", "nextCursor")


def query_params(*names: str, required: tuple[str, ...] = (), **overrides: str) -> dict[str, Any]:
    """`openapi_extra` documenting the query parameters a route reads."""
    return {
        "parameters": [
            {
                "name": n,
                "in": "query",
                "required": n in required,
                "schema": {"type": "string"},
                "description": overrides.get(n, QUERY_DOCS[n]),
            }
            for n in names
        ]  # fmt: skip
    }


def service(request: Request) -> Service:
    return request.app.state.service


def cached(request: Request, build: Callable[[], Any]) -> JSONBytes:
    """The response for this request at the newest state update, encoded once and reused.

    `build` parses the parameters and queries the service, so a repeated request skips both; a failing
    build raises and nothing is cached. A request with a nextCursor is always built (the cursor's
    signature and expiry are checked every time).
    """
    scope = request.scope
    if b"nextCursor=" in scope["query_string"]:
        return JSONBytes(build())
    key = (scope["path"], scope["query_string"], service(request).latest_height())
    return JSONBytes(request.app.state.cache.get_or_build(key, build))


def series_window(request: Request, query: str, *, start_required: bool = True) -> Window:
    q = request.query_params
    return params.window(
        q.get("start"), q.get("end"), q.get("limit"), q.get("nextCursor"), service(request).cursors, query,
        start_required=start_required,
    )  # fmt: skip


def query_key(request: Request, *parts: object) -> str:
    """What a cursor is bound to: the route and every parameter except the cursor and the page size."""
    q = request.query_params
    return Service.query_key(request.scope["path"].lower(), q.get("start"), q.get("end"), *parts)
