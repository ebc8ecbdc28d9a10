"""Market-wide series and the per-coin snapshot."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse

from hyperscope.api.responses import JSONBytes
from hyperscope.api.routes.common import EXTERNAL, SERIES, cached, query_key, query_params, series_window, service
from hyperscope.exports import open_positions_csv

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


@router.get("/positions/open/coin/{coin}", tags=["positions"], status_code=302, response_class=RedirectResponse)
async def open_positions(request: Request, coin: str) -> RedirectResponse:
    """302 to a CSV of every open position of the coin at the newest state update (link valid 120 s)."""
    name = service(request).resolve_coin(coin)

    def export() -> str:  # built now, so the file is one state update even while new ones land
        data = open_positions_csv(service(request).open_positions(name))
        return request.app.state.files.put(data, "csv")

    file_id = await run_in_threadpool(export)
    token = request.app.state.links.issue(file_id, f"{name.replace(':', '_')}-open-positions.csv")
    return RedirectResponse(f"/downloads/{token}", status_code=302)
