"""Market-wide series and the per-coin snapshot."""

from __future__ import annotations

from fastapi import APIRouter, Request

from hyperscope.api.auth import scoped
from hyperscope.api.hypertracker import shape
from hyperscope.api.hypertracker.common import EXTERNAL, SERIES, cached, query_key, query_params, series_window, service
from hyperscope.api.models import CoinList, GeneralPage, VolumePage, error_responses
from hyperscope.api.responses import JSONBytes

metrics_router = APIRouter(prefix=EXTERNAL, tags=["metrics"], route_class=scoped("metrics"))
positions_router = APIRouter(prefix=EXTERNAL, tags=["positions"], route_class=scoped("positions"))
SERIES_DOCS = query_params(*SERIES, required=("start",))


@metrics_router.get(
    "/position-metrics/general",
    response_class=JSONBytes,
    response_model=GeneralPage,
    responses=error_responses(400),
    openapi_extra=query_params(*SERIES),
)
async def general(request: Request) -> JSONBytes:
    """Market-wide open interest, position counts, perp equity and positions in profit, per state update.
    `start` is optional here, as upstream documents it: without it the series runs from its first row (pages
    newest first, so the first page is the latest rows)."""

    def build() -> dict:
        key = query_key(request)
        svc = service(request)
        window = series_window(request, key, start_required=False)
        return shape.series(svc.general(window), shape.GENERAL_FIELDS, svc.cursors, key)

    return cached(request, build, SERIES)


@metrics_router.get(
    "/metrics/perp-volume",
    response_class=JSONBytes,
    response_model=VolumePage,
    responses=error_responses(400),
    openapi_extra=SERIES_DOCS,
)
async def perp_volume(request: Request) -> JSONBytes:
    """Rolling 24 h perp volume summed over all coins, per state update."""

    def build() -> dict:
        key = query_key(request)
        svc = service(request)
        return shape.series(svc.perp_volume(series_window(request, key)), shape.VOLUME_FIELDS, svc.cursors, key)

    return cached(request, build, SERIES)


@positions_router.get(
    "/positions/coins", response_class=JSONBytes, response_model=CoinList, responses=error_responses()
)
async def coins(request: Request) -> JSONBytes:
    """Every coin with open positions at the newest state update, by total value descending."""
    return cached(request, lambda: shape.coins(service(request).coins()))
