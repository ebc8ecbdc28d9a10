"""Cohorts: the legend, bias history, the coin x cohort heatmap and liquidation risk."""

from __future__ import annotations

from fastapi import APIRouter, Request

from hyperscope.api import params
from hyperscope.api.responses import JSONBytes
from hyperscope.api.routes.common import EXTERNAL, SERIES, cached, query_key, query_params, service
from hyperscope.errors import BadParameter

router = APIRouter(prefix=EXTERNAL)
BIAS_DOCS = query_params(*SERIES, "positionRecencyTimeframe",
                         start="Start (ISO 8601); required with end, limit or nextCursor.")  # fmt: skip
RISK_DOCS = query_params("offset", "limit", limit="Items to return, 1-500 (default 500).")


@router.get("/segments", response_class=JSONBytes, tags=["segments"])
async def segments(request: Request) -> JSONBytes:
    """The 16 cohorts: id, name, category (size|pnl), criteria and emoji."""
    return cached(request, service(request).segments)


@router.get("/segments/{segmentId}/bias-history", response_class=JSONBytes, tags=["segments"],
            openapi_extra=BIAS_DOCS)  # fmt: skip
async def bias_history(request: Request, segmentId: str) -> JSONBytes:  # noqa: N803
    """A cohort's exchange-wide perp bias over time; without parameters the last 60 days at 2 h spacing."""

    def build() -> dict:
        svc, q = service(request), request.query_params
        segment = svc.segment(segmentId)
        tf = svc.timeframe(q.get("positionRecencyTimeframe"), "positionRecencyTimeframe")
        start = q.get("start")
        if start is None and (q.get("end") or q.get("limit") or q.get("nextCursor")):
            raise BadParameter("start", "required when end, limit or nextCursor is given")
        key = query_key(request, segment, tf)
        if start is None:
            return svc.bias_history(segment, tf, svc.default_bias_window(), key, sampled=True)
        window = params.window(start, q.get("end"), q.get("limit"), q.get("nextCursor"), svc.cursors, key)
        return svc.bias_history(segment, tf, window, key, sampled=False)

    return cached(request, build)


@router.get("/positions/heatmap", response_class=JSONBytes, tags=["positions"],
            openapi_extra=query_params("openedWithin"))  # fmt: skip
async def heatmap(request: Request) -> JSONBytes:
    """Every coin with its per-cohort values, counts and long fraction at the newest state update."""
    svc = service(request)
    return cached(request, lambda: svc.heatmap(svc.timeframe(request.query_params.get("openedWithin"), "openedWithin")))


@router.get("/{segmentId}/assets/liquidation-risk", response_class=JSONBytes, tags=["segments"],
            openapi_extra=RISK_DOCS)  # fmt: skip
async def liquidation_risk(request: Request, segmentId: str) -> JSONBytes:  # noqa: N803
    """Per coin, the share of the cohort's open value within 75% of its liquidation price."""

    def build() -> dict:
        svc, q = service(request), request.query_params
        skip = params.parse_int(q.get("offset"), "offset", 0, 0, 10_000_000)
        size = params.parse_int(q.get("limit"), "limit", 500, 1, 500)
        return svc.liquidation_risk(svc.segment(segmentId), skip, size)

    return cached(request, build)
