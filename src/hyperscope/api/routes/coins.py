"""Per-coin series: whole coin, coin x cohort, coin x position size bucket."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from hyperscope.api.auth import require
from hyperscope.api.responses import JSONBytes
from hyperscope.api.routes.common import EXTERNAL, cached, query_key, series_window, service
from hyperscope.api.routes.market import CURSOR, END, LIMIT, START

router = APIRouter(prefix=EXTERNAL, tags=["metrics"], dependencies=[Depends(require("metrics"))])
RECENCY = Query(None, description="Count only positions opened within: 24h, 7d, 30d or all (default).")


@router.get("/position-metrics/coin/{coin}", response_class=JSONBytes)
async def coin_series(request: Request, coin: str, start: str | None = START, end: str | None = END,
                      limit: str | None = LIMIT, nextCursor: str | None = CURSOR) -> JSONBytes:  # noqa: N803  # fmt: skip
    """Open positions, value, size, funding and unrealized PnL of one coin, per state update."""
    name = service(request).resolve_coin(coin)
    window = series_window(request, query_key(request, name))
    return cached(request, lambda: service(request).coin_series(name, window, query_key(request, name)))


@router.get("/position-metrics/coin/{coin}/segment/{segmentId}", response_class=JSONBytes)
async def coin_segment_series(request: Request, coin: str, segmentId: str, start: str | None = START,  # noqa: N803
                              end: str | None = END, limit: str | None = LIMIT, nextCursor: str | None = CURSOR,  # noqa: N803
                              positionRecencyTimeframe: str | None = RECENCY) -> JSONBytes:  # noqa: N803  # fmt: skip
    """The coin series restricted to one cohort's wallets."""
    svc = service(request)
    name, segment = svc.resolve_coin(coin), svc.segment(segmentId)
    tf = svc.timeframe(positionRecencyTimeframe, "positionRecencyTimeframe")
    key = query_key(request, name, segment, tf)
    window = series_window(request, key)
    return cached(request, lambda: svc.coin_segment_series(name, segment, tf, window, key))


@router.get("/position-metrics/coin/{coin}/position-size-bucket/{sizeBucketId}", response_class=JSONBytes)
async def coin_bucket_series(request: Request, coin: str, sizeBucketId: str, start: str | None = START,  # noqa: N803
                             end: str | None = END, limit: str | None = LIMIT,
                             nextCursor: str | None = CURSOR) -> JSONBytes:  # noqa: N803  # fmt: skip
    """The coin series restricted to positions of one size bucket (1-10)."""
    svc = service(request)
    name, bucket = svc.resolve_coin(coin), svc.bucket(sizeBucketId)
    key = query_key(request, name, bucket)
    window = series_window(request, key)
    return cached(request, lambda: svc.coin_bucket_series(name, bucket, window, key))
