"""Helpers every route module shares: the service, the response cache and cached JSON responses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request

from hyperscope.api import params
from hyperscope.api.responses import JSONBytes
from hyperscope.service import Service, Window

EXTERNAL = "/api/external"


def service(request: Request) -> Service:
    return request.app.state.service


def cached(request: Request, build: Callable[[], Any]) -> JSONBytes:
    """The response for this request at the newest state update, encoded once and reused."""
    svc = service(request)
    key = (request.url.path, str(request.query_params), svc.latest_height())
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
    return Service.query_key(request.url.path.lower(), q.get("start"), q.get("end"), *parts)
