"""Unauthenticated operational routes: /health and Prometheus /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response

from hyperscope.api.responses import JSONBytes
from hyperscope.api.routes.common import service

router = APIRouter(tags=["system"])


@router.get("/health", response_class=JSONBytes)
async def health(request: Request) -> JSONBytes:
    """Newest state update (height, time), lag behind the clock and the store backend."""
    return JSONBytes(service(request).health())


@router.get("/metrics")
async def prometheus(request: Request) -> Response:
    """Prometheus text format: requests, latencies, ingest durations, height and lag."""
    metrics = request.app.state.metrics
    health = service(request).health()
    if health["lagSeconds"] is not None:
        metrics.lag.set(health["lagSeconds"])
        metrics.height.set(health["height"])
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/downloads/{token}")
async def download(request: Request, token: str) -> FileResponse:
    """An export file behind a signed link (no key needed: the link is the credential; 403 once expired)."""
    file_id, name = request.app.state.links.verify(token)
    path = request.app.state.files.path(file_id)
    media = "text/csv" if file_id.endswith(".csv") else "application/json"
    return FileResponse(path, media_type=media, filename=name)
