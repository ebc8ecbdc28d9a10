"""Market-wide series and the per-coin snapshot."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse

from hyperscope.api.auth import scoped
from hyperscope.api.models import CoinList, GeneralPage, VolumePage, error_responses
from hyperscope.api.responses import JSONBytes
from hyperscope.api.routes.common import EXTERNAL, SERIES, cached, query_key, query_params, series_window, service
from hyperscope.exports import open_positions_csv

metrics_router = APIRouter(prefix=EXTERNAL, tags=["metrics"], route_class=scoped("metrics"))
positions_router = APIRouter(prefix=EXTERNAL, tags=["positions"], route_class=scoped("positions"))
SERIES_DOCS = query_params(*SERIES, required=("start",))


@metrics_router.get("/position-metrics/general", response_class=JSONBytes, response_model=GeneralPage,
                    responses=error_responses(400), openapi_extra=SERIES_DOCS)  # fmt: skip
async def general(request: Request) -> JSONBytes:
    """Market-wide open interest, position counts, perp equity and positions in profit, per state update."""

    def build() -> dict:
        key = query_key(request)
        return service(request).general(series_window(request, key), key)

    return cached(request, build, SERIES)


@metrics_router.get("/metrics/perp-volume", response_class=JSONBytes, response_model=VolumePage,
                    responses=error_responses(400), openapi_extra=SERIES_DOCS)  # fmt: skip
async def perp_volume(request: Request) -> JSONBytes:
    """Rolling 24 h perp volume summed over all coins, per state update."""

    def build() -> dict:
        key = query_key(request)
        return service(request).perp_volume(series_window(request, key), key)

    return cached(request, build, SERIES)


@positions_router.get("/positions/coins", response_class=JSONBytes, response_model=CoinList,
                      responses=error_responses())  # fmt: skip
async def coins(request: Request) -> JSONBytes:
    """Every coin with open positions at the newest state update, by total value descending."""
    return cached(request, service(request).coins)


@positions_router.get("/positions/open/coin/{coin}", status_code=302, response_class=RedirectResponse,
                      responses=error_responses(404, 429, 503))  # fmt: skip
async def open_positions(request: Request, coin: str) -> RedirectResponse:
    """302 to a CSV of every open position of the coin at the newest state update (link valid 120 s).

    The file is built once per state update and shared by every request for it until the next one."""
    svc = service(request)
    name, height = svc.resolve_coin(coin), svc.latest_height() or 0
    key_id = request.scope["state"]["api_key"].key_id

    def export() -> str:
        build = lambda: open_positions_csv(svc.open_positions(name))  # noqa: E731
        return request.app.state.exports.get_or_build("open-positions", name, height, key_id, build, "csv")

    file_id = await run_in_threadpool(export)
    token = request.app.state.links.issue(file_id, f"{name.replace(':', '_')}-open-positions.csv")
    return RedirectResponse(f"/downloads/{token}", status_code=302)
