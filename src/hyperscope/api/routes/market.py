"""Market-wide series and the per-coin snapshot."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from hyperscope.api.auth import require
from hyperscope.api.responses import JSONBytes
from hyperscope.api.routes.common import EXTERNAL, cached, query_key, series_window, service

START = Query(None, description="Start of the window (ISO 8601; required).")
END = Query(None, description="End of the window (ISO 8601); now when omitted.")
LIMIT = Query(None, description="Rows per page, 1-1000 (default 1000).")
CURSOR = Query(None, description="nextCursor from the previous page.")

metrics_router = APIRouter(prefix=EXTERNAL, tags=["metrics"], dependencies=[Depends(require("metrics"))])
positions_router = APIRouter(prefix=EXTERNAL, tags=["positions"], dependencies=[Depends(require("positions"))])


@metrics_router.get("/position-metrics/general", response_class=JSONBytes)
async def general(request: Request, start: str | None = START, end: str | None = END,
                  limit: str | None = LIMIT, nextCursor: str | None = CURSOR) -> JSONBytes:  # noqa: N803  # fmt: skip
    """Market-wide open interest, position counts, perp equity and positions in profit, per state update."""
    window = series_window(request, query_key(request))
    return cached(request, lambda: service(request).general(window, query_key(request)))


@metrics_router.get("/metrics/perp-volume", response_class=JSONBytes)
async def perp_volume(request: Request, start: str | None = START, end: str | None = END,
                      limit: str | None = LIMIT, nextCursor: str | None = CURSOR) -> JSONBytes:  # noqa: N803  # fmt: skip
    """Rolling 24 h perp volume summed over all coins, per state update."""
    window = series_window(request, query_key(request))
    return cached(request, lambda: service(request).perp_volume(window, query_key(request)))


@positions_router.get("/positions/coins", response_class=JSONBytes)
async def coins(request: Request) -> JSONBytes:
    """Every coin with open positions at the newest state update, by total value descending."""
    return cached(request, service(request).coins)
