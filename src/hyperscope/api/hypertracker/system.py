"""Unauthenticated operational routes: /health, Prometheus /metrics and signed downloads."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response

from hyperscope.api.hypertracker.common import service
from hyperscope.api.models import Error, Health
from hyperscope.api.responses import JSONBytes
from hyperscope.api.state import api_state
from hyperscope.errors import HyperscopeError
from hyperscope.exports import FORMATS

router = APIRouter(tags=["system"])


@router.get(
    "/health",
    response_class=JSONBytes,
    response_model=Health,
    responses={503: {"model": Health, "description": "empty, stale or ingest_failed"}},
)
async def health(request: Request) -> JSONBytes:
    """200 when the newest state update is fresh and ingest runs; 503 with the reason otherwise."""
    state = api_state(request)
    config = state.config
    status, body = await run_in_threadpool(
        service(request).health,
        config.stale_after_seconds,
        state.ingest,
        writer_pace=config.stale_after_from_writer,
        keys_unavailable=state.keys.unavailable,
    )
    return JSONBytes(_camel(body), status_code=status)


# the service's health words -> the API's (its fields are camelCase like the rest of /api/external)
_HEALTH_FIELDS = {
    "lag_seconds": "lagSeconds",
    "stale_after_seconds": "staleAfterSeconds",
    "heartbeat_seconds_ago": "heartbeatSecondsAgo",
}


def _camel(body: dict) -> dict:
    out = {_HEALTH_FIELDS.get(k, k): v for k, v in body.items()}
    if isinstance(out.get("ingest"), dict):
        out["ingest"] = {_HEALTH_FIELDS.get(k, k): v for k, v in out["ingest"].items()}
    return out


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def prometheus(request: Request) -> Response:
    """Prometheus text format: requests, latencies, ingest durations, height and lag."""
    metrics = api_state(request).metrics
    try:  # during an outage the process's own figures still answer (Prometheus keeps scraping)
        latest = service(request).latest()
    except HyperscopeError:
        latest = None
    if latest is not None:
        metrics.observe_latest(latest.height, latest.time)
    cache = api_state(request).cache
    metrics.cache_entries.set(len(cache))
    metrics.cache_bytes.set(cache.bytes)
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")


@router.get(
    "/downloads/{token}",
    response_class=FileResponse,
    responses={
        200: {"content": {media: {} for media in FORMATS.values()}},
        403: {"model": Error, "description": "Invalid or expired link."},
        404: {"model": Error, "description": "The file is gone."},
    },
)
async def download(request: Request, token: str) -> FileResponse:
    """An export file behind a signed link (no key needed: the link is the credential; 403 once expired)."""
    file_id, name = api_state(request).links.verify(token)
    path = api_state(request).exports.files.path(file_id)
    return FileResponse(path, media_type=FORMATS[file_id.rsplit(".", 1)[1]], filename=name)
