"""Per-coin series: whole coin, coin x cohort, coin x position size bucket."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request

from hyperscope.api.auth import scoped
from hyperscope.api.hypertracker import shape
from hyperscope.api.hypertracker.common import (
    EXTERNAL,
    SERIES,
    bucket_id,
    cached,
    path_id_param,
    query_key,
    query_params,
    segment_id,
    series_window,
    service,
)
from hyperscope.api.models import CoinMetricsPage, error_responses
from hyperscope.api.responses import JSONBytes

router = APIRouter(prefix=EXTERNAL, tags=["metrics"], route_class=scoped("metrics"))
SEGMENT_SERIES = (*SERIES, "positionRecencyTimeframe")
SEGMENT_ID = Annotated[str, path_id_param("Cohort id, 1-16 (GET /api/external/segments).")]
BUCKET_ID = Annotated[str, path_id_param("Position size bucket id, 1-10.")]


@router.get(
    "/position-metrics/coin/{coin}",
    response_class=JSONBytes,
    response_model=CoinMetricsPage,
    responses=error_responses(400, 404),
    openapi_extra=query_params(*SERIES, required=("start",)),
)
async def coin_series(request: Request, coin: str) -> JSONBytes:
    """Open positions, value, size, funding and unrealized PnL of one coin, per state update."""

    def build() -> dict:
        svc = service(request)
        name = svc.resolve_coin(coin)
        key = query_key(request, name)
        page = svc.coin_series(name, series_window(request, key))
        return shape.series(page, shape.COIN_FIELDS, svc.cursors, key, {"coin": name})

    return cached(request, build, SERIES)


@router.get(
    "/position-metrics/coin/{coin}/segment/{segmentId}",
    response_class=JSONBytes,
    response_model=CoinMetricsPage,
    responses=error_responses(400, 404),
    openapi_extra=query_params(*SEGMENT_SERIES, required=("start",)),
)
async def coin_segment_series(request: Request, coin: str, segmentId: SEGMENT_ID) -> JSONBytes:  # noqa: N803
    """The coin series restricted to one cohort's wallets."""

    def build() -> dict:
        svc = service(request)
        name, segment = svc.resolve_coin(coin), segment_id(svc, segmentId)
        tf = svc.timeframe(request.query_params.get("positionRecencyTimeframe"), "positionRecencyTimeframe")
        key = query_key(request, name, segment, tf)
        page = svc.coin_segment_series(name, segment, tf, series_window(request, key))
        return shape.series(page, shape.COIN_FIELDS, svc.cursors, key, {"coin": name, "segmentId": segment})

    return cached(request, build, SEGMENT_SERIES)


@router.get(
    "/position-metrics/coin/{coin}/position-size-bucket/{sizeBucketId}",
    response_class=JSONBytes,
    response_model=CoinMetricsPage,
    responses=error_responses(400, 404),
    openapi_extra=query_params(*SERIES, required=("start",)),
)
async def coin_bucket_series(request: Request, coin: str, sizeBucketId: BUCKET_ID) -> JSONBytes:  # noqa: N803
    """The coin series restricted to positions of one size bucket (1-10)."""

    def build() -> dict:
        svc = service(request)
        name, bucket = svc.resolve_coin(coin), bucket_id(svc, sizeBucketId)
        key = query_key(request, name, bucket)
        page = svc.coin_bucket_series(name, bucket, series_window(request, key))
        return shape.series(page, shape.COIN_FIELDS, svc.cursors, key, {"coin": name, "sizeBucketId": bucket})

    return cached(request, build, SERIES)
