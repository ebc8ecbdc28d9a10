"""Cohorts: the legend, bias history, the coin x cohort heatmap and liquidation risk."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from hyperscope.api import params
from hyperscope.api.auth import require
from hyperscope.api.responses import JSONBytes
from hyperscope.api.routes.common import EXTERNAL, cached, query_key, service
from hyperscope.api.routes.market import CURSOR, END, LIMIT
from hyperscope.errors import BadParameter

segments_router = APIRouter(prefix=EXTERNAL, tags=["segments"], dependencies=[Depends(require("segments"))])
positions_router = APIRouter(prefix=EXTERNAL, tags=["positions"], dependencies=[Depends(require("positions"))])
RECENCY = Query(None, description="Count only positions opened within: 24h, 7d, 30d or all (default).")
OPENED_WITHIN = Query(None, description="Count only positions opened within: 24h, 7d, 30d or all (default).")
BIAS_START = Query(None, description="Start (ISO 8601); required with end, limit or nextCursor.")
OFFSET = Query(None, description="Items to skip (default 0).")
RISK_LIMIT = Query(None, description="Items to return, 1-500 (default 500).")


@segments_router.get("/segments", response_class=JSONBytes)
async def segments(request: Request) -> JSONBytes:
    """The 16 cohorts: id, name, category (size|pnl), criteria and emoji."""
    return cached(request, service(request).segments)


@segments_router.get("/segments/{segmentId}/bias-history", response_class=JSONBytes)
async def bias_history(request: Request, segmentId: str,  # noqa: N803
                       start: str | None = BIAS_START,
                       end: str | None = END, limit: str | None = LIMIT, nextCursor: str | None = CURSOR,  # noqa: N803
                       positionRecencyTimeframe: str | None = RECENCY) -> JSONBytes:  # noqa: N803  # fmt: skip
    """A cohort's exchange-wide perp bias over time; without parameters the last 60 days at 2 h spacing."""
    svc = service(request)
    segment = svc.segment(segmentId)
    tf = svc.timeframe(positionRecencyTimeframe, "positionRecencyTimeframe")
    if start is None and (end or limit or nextCursor):
        raise BadParameter("start", "required when end, limit or nextCursor is given")
    key = query_key(request, segment, tf)
    sampled = start is None
    window = svc.default_bias_window() if sampled else params.window(start, end, limit, nextCursor, svc.cursors, key)
    return cached(request, lambda: svc.bias_history(segment, tf, window, key, sampled))


@positions_router.get("/positions/heatmap", response_class=JSONBytes)
async def heatmap(request: Request, openedWithin: str | None = OPENED_WITHIN) -> JSONBytes:  # noqa: N803
    """Every coin with its per-cohort values, counts and long fraction at the newest state update."""
    svc = service(request)
    tf = svc.timeframe(openedWithin, "openedWithin")
    return cached(request, lambda: svc.heatmap(tf))


@segments_router.get("/{segmentId}/assets/liquidation-risk", response_class=JSONBytes)
async def liquidation_risk(request: Request, segmentId: str,  # noqa: N803
                           offset: str | None = OFFSET, limit: str | None = RISK_LIMIT) -> JSONBytes:  # fmt: skip
    """Per coin, the share of the cohort's open value within 75% of its liquidation price."""
    svc = service(request)
    segment = svc.segment(segmentId)
    skip = params.parse_int(offset, "offset", 0, 0, 10_000_000)
    size = params.parse_int(limit, "limit", 500, 1, 500)
    return cached(request, lambda: svc.liquidation_risk(segment, skip, size))
