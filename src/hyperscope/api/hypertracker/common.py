"""Helpers every route module shares: the service, cached JSON responses, query parameters, path ids.

Query parameters are read from the request and documented through `openapi_extra` instead of being
declared as function arguments: FastAPI's per-request parameter machinery costs more than the route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Path, Request

from hyperscope.api import params
from hyperscope.api.hypertracker import shape
from hyperscope.api.responses import JSONBytes
from hyperscope.api.state import api_state
from hyperscope.service import Service, Window
from hyperscope.service.queries import UnknownBucket, UnknownSegment

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
TIME = {"type": "string", "pattern": params.TIME_PATTERN, "example": "2026-02-10T12:00:00Z"}
TIMEFRAME = {"type": "string", "enum": ["24h", "7d", "30d", "all"]}
QUERY_SCHEMAS: dict[str, dict[str, Any]] = {
    "start": TIME,
    "end": TIME,
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
    "nextCursor": {"type": "string", "minLength": 1},
    "positionRecencyTimeframe": TIMEFRAME,
    "openedWithin": TIMEFRAME,
    "offset": {"type": "integer", "minimum": 0, "maximum": 10_000_000},
}


def query_params(*names: str, required: tuple[str, ...] = (), schemas: dict | None = None, **docs: str) -> dict:
    """`openapi_extra` documenting the query parameters a route reads."""
    return {
        "parameters": [
            {
                "name": n,
                "in": "query",
                "required": n in required,
                "schema": (schemas or {})[n] if n in (schemas or {}) else QUERY_SCHEMAS[n],
                "description": docs[n] if n in docs else QUERY_DOCS[n],
            }
            for n in names
        ]
    }


def path_id_param(description: str) -> Any:
    """A path parameter holding an id: documented with the one form `params.path_id` accepts."""
    return Path(description=description, json_schema_extra={"pattern": params.ID_PATTERN})


def service(request: Request) -> Service:
    return api_state(request).service


def cached(request: Request, build: Callable[[], Any], reads: tuple[str, ...] = ()) -> JSONBytes:
    """The response for this request at the newest state update, encoded once and reused.

    `reads` names the query parameters the route reads: only they make a request different, so
    `?junk=1`, `?junk=2`, ... share one entry. `build` parses the parameters and queries the service, so a
    repeated request skips both; a failing build raises and nothing is cached. A request with a
    nextCursor is always built (the cursor's signature and expiry are checked every time).
    """
    q = request.query_params
    if "nextCursor" in reads and q.get("nextCursor"):
        return JSONBytes(build())
    key = (request.scope["path"], *("\x00".join(q.getlist(name)) for name in reads))
    state, height = api_state(request), service(request).latest_height()
    body = state.cache.get_or_build(height, key, build)
    state.fast.remember(request.scope, height, key)  # the same request again takes the short path
    return JSONBytes(body)


def series_window(request: Request, query: str, *, start_required: bool = True) -> Window:
    q = request.query_params
    return params.window(
        q.get("start"),
        q.get("end"),
        q.get("limit"),
        q.get("nextCursor"),
        service(request).cursors,
        query,
        start_required=start_required,
    )


def segment_id(svc: Service, text: str) -> int:
    return svc.segment(params.path_id(text, "segment", shape.HINTS[UnknownSegment]))


def bucket_id(svc: Service, text: str) -> int:
    return svc.bucket(params.path_id(text, "position size bucket", shape.HINTS[UnknownBucket]))


def query_key(request: Request, *parts: object) -> str:
    """What a cursor is bound to: the route and every parameter except the cursor and the page size."""
    q = request.query_params
    return Service.query_key(request.scope["path"].lower(), q.get("start"), q.get("end"), *parts)
