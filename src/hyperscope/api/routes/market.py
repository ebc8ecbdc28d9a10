"""Market-wide series and the per-coin snapshot."""

from __future__ import annotations

from fastapi import APIRouter, Request

from hyperscope.api.responses import JSONBytes
from hyperscope.api.routes.common import EXTERNAL, SERIES, cached, query_key, query_params, series_window, service

router = APIRouter(prefix=EXTERNAL)
SERIES_DOCS = query_params(*SERIES, required=("start",))


@router.get("/position-metrics/general", response_class=JSONBytes, tags=["metrics"], openapi_extra=SERIES_DOCS)
async def general(request: Request) -> JSONBytes:
    """Market-wide open interest, position counts, perp equity and positions in profit, per state update."""

    def build() -> dict:
        key = query_key(request)
        return service(request).general(series_window(request, key), key)

    return cached(request, build)


@router.get("/metrics/perp-volume", response_class=JSONBytes, tags=["metrics"], openapi_extra=SERIES_DOCS)
async def perp_volume(request: Request) -> JSONBytes:
    """Rolling 24 h perp volume summed over all coins, per state update."""

    def build() -> dict:
        key = query_key(request)
        return service(request).perp_volume(series_window(request, key), key)

    return cached(request, build)


@router.get("/positions/coins", response_class=JSONBytes, tags=["positions"])
async def coins(request: Request) -> JSONBytes:
    """Every coin with open positions at the newest state update, by total value descending."""
    return cached(request, service(request).coins)
