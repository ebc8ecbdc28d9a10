"""Cohorts: the legend, bias history, the coin x cohort heatmap and liquidation risk."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request

from hyperscope.api import params
from hyperscope.api.auth import scoped
from hyperscope.api.hypertracker import shape
from hyperscope.api.hypertracker.common import (
    EXTERNAL,
    SERIES,
    cached,
    path_id_param,
    query_key,
    query_params,
    segment_id,
    service,
)
from hyperscope.api.models import BiasHistory, Heatmap, LiquidationRisk, SegmentList, error_responses
from hyperscope.api.responses import JSONBytes
from hyperscope.errors import BadParameter

segments_router = APIRouter(prefix=EXTERNAL, tags=["segments"], route_class=scoped("segments"))
positions_router = APIRouter(prefix=EXTERNAL, tags=["positions"], route_class=scoped("positions"))
BIAS_READS = (*SERIES, "positionRecencyTimeframe")
BIAS_DOCS = query_params(*BIAS_READS, start="Start (ISO 8601); required with end, limit or nextCursor.")
RISK_READS = ("offset", "limit")
RISK_DOCS = query_params(
    *RISK_READS,
    limit="Items to return, 1-500 (default 500).",
    schemas={"limit": {"type": "integer", "minimum": 1, "maximum": 500}},
)
SEGMENT_ID = Annotated[str, path_id_param("Cohort id, 1-16 (GET /api/external/segments).")]


@segments_router.get("/segments", response_class=JSONBytes, response_model=SegmentList, responses=error_responses())
async def segments(request: Request) -> JSONBytes:
    """The 16 cohorts: id, name, category (size|pnl), criteria and emoji."""
    return cached(request, lambda: shape.segments(service(request).segments()))


@segments_router.get(
    "/segments/{segmentId}/bias-history",
    response_class=JSONBytes,
    response_model=BiasHistory,
    responses=error_responses(400, 404),
    openapi_extra=BIAS_DOCS,
)
async def bias_history(request: Request, segmentId: SEGMENT_ID) -> JSONBytes:  # noqa: N803
    """A cohort's exchange-wide perp bias over time; without parameters the last 60 days at 2 h spacing."""

    def build() -> dict:
        svc, q = service(request), request.query_params
        segment = segment_id(svc, segmentId)
        tf = svc.timeframe(q.get("positionRecencyTimeframe"), "positionRecencyTimeframe")
        start = q.get("start")
        if start is None and (q.get("end") or q.get("limit") or q.get("nextCursor")):
            raise BadParameter("start", "required when end, limit or nextCursor is given")
        key = query_key(request, segment, tf)
        if start is None:
            window = svc.default_bias_window()
            page = svc.bias_history(segment, tf, window, sampled=True)
        else:
            window = params.window(start, q.get("end"), q.get("limit"), q.get("nextCursor"), svc.cursors, key)
            page = svc.bias_history(segment, tf, window, sampled=False)
        return shape.bias_history(page, segment, tf, window, svc.cursors, key)

    return cached(request, build, BIAS_READS)


@positions_router.get(
    "/positions/heatmap",
    response_class=JSONBytes,
    response_model=Heatmap,
    responses=error_responses(400),
    openapi_extra=query_params("openedWithin"),
)
async def heatmap(request: Request) -> JSONBytes:
    """Every coin with its per-cohort values, counts and long fraction at the newest state update."""
    svc = service(request)
    build = lambda: shape.heatmap(  # noqa: E731
        svc.coin_segment_rows(svc.timeframe(request.query_params.get("openedWithin"), "openedWithin"))
    )
    return cached(request, build, ("openedWithin",))


@segments_router.get(
    "/{segmentId}/assets/liquidation-risk",
    response_class=JSONBytes,
    response_model=LiquidationRisk,
    responses=error_responses(400, 404),
    openapi_extra=RISK_DOCS,
)
async def liquidation_risk(request: Request, segmentId: SEGMENT_ID) -> JSONBytes:  # noqa: N803
    """Per coin, the share of the cohort's open value within 75% of its liquidation price."""

    def build() -> dict:
        svc, q = service(request), request.query_params
        segment = segment_id(svc, segmentId)
        skip = params.parse_int(q.get("offset"), "offset", 0, 0, 10_000_000)
        size = params.parse_int(q.get("limit"), "limit", 500, 1, 500)
        return shape.liquidation_risk(svc.coin_segment_rows("all", segment), skip, size)

    return cached(request, build, RISK_READS)
