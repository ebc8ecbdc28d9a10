"""Per-coin series: whole coin, coin x cohort, coin x position size bucket."""

from __future__ import annotations

from fastapi import APIRouter, Request

from hyperscope.api.responses import JSONBytes
from hyperscope.api.routes.common import EXTERNAL, SERIES, cached, query_key, query_params, series_window, service

router = APIRouter(prefix=EXTERNAL, tags=["metrics"])


@router.get("/position-metrics/coin/{coin}", response_class=JSONBytes,
            openapi_extra=query_params(*SERIES, required=("start",)))  # fmt: skip
async def coin_series(request: Request, coin: str) -> JSONBytes:
    """Open positions, value, size, funding and unrealized PnL of one coin, per state update."""

    def build() -> dict:
        name = service(request).resolve_coin(coin)
        key = query_key(request, name)
        return service(request).coin_series(name, series_window(request, key), key)

    return cached(request, build)


@router.get("/position-metrics/coin/{coin}/segment/{segmentId}", response_class=JSONBytes,
            openapi_extra=query_params(*SERIES, "positionRecencyTimeframe", required=("start",)))  # fmt: skip
async def coin_segment_series(request: Request, coin: str, segmentId: str) -> JSONBytes:  # noqa: N803
    """The coin series restricted to one cohort's wallets."""

    def build() -> dict:
        svc = service(request)
        name, segment = svc.resolve_coin(coin), svc.segment(segmentId)
        tf = svc.timeframe(request.query_params.get("positionRecencyTimeframe"), "positionRecencyTimeframe")
        key = query_key(request, name, segment, tf)
        return svc.coin_segment_series(name, segment, tf, series_window(request, key), key)

    return cached(request, build)


@router.get("/position-metrics/coin/{coin}/position-size-bucket/{sizeBucketId}", response_class=JSONBytes,
            openapi_extra=query_params(*SERIES, required=("start",)))  # fmt: skip
async def coin_bucket_series(request: Request, coin: str, sizeBucketId: str) -> JSONBytes:  # noqa: N803
    """The coin series restricted to positions of one size bucket (1-10)."""

    def build() -> dict:
        svc = service(request)
        name, bucket = svc.resolve_coin(coin), svc.bucket(sizeBucketId)
        key = query_key(request, name, bucket)
        return svc.coin_bucket_series(name, bucket, series_window(request, key), key)

    return cached(request, build)
