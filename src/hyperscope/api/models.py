"""Response models for the OpenAPI document: every route's 200 body and its error bodies.

Documentation only: routes return encoded bytes (JSONBytes), which FastAPI passes through without
validating, so these cost nothing per request. A test checks real responses against them (schemathesis).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Error(BaseModel):
    error: str = Field(description="Error type: bad_parameter, bad_cursor, unauthorized, forbidden, not_found, ...")
    message: str = Field(description="What was wrong, naming the parameter where there is one.")


class RateLimitError(Error):
    retry_after: int = Field(description="Seconds until the key's window resets (also in Retry-After).")


_DESCRIPTIONS = {
    400: "A parameter is missing or malformed (named in the message), or a cursor is invalid.",
    401: "Missing, malformed, unknown or revoked API key.",
    403: "The API key has no access to this route's scope.",
    404: "Unknown coin, segment, bucket or route.",
    429: "Rate limit exceeded.",
    503: "The store or export storage is temporarily unable to answer; retry.",
}


def error_responses(*extra: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a keyed route: 401, 403 and 429 always, plus the statuses it names."""
    statuses = sorted({401, 403, 429, 503, *extra})
    return {s: {"model": RateLimitError if s == 429 else Error, "description": _DESCRIPTIONS[s]} for s in statuses}


class _Row(BaseModel):
    id: int
    createdAt: str  # noqa: N815


class GeneralRow(_Row):
    count: int
    countLong: int  # noqa: N815
    countShort: int  # noqa: N815
    openInterest: float  # noqa: N815
    openInterestLong: float  # noqa: N815
    openInterestShort: float  # noqa: N815
    perpEquity: float  # noqa: N815
    countInProfit: int  # noqa: N815


class GeneralPage(BaseModel):
    metrics: list[GeneralRow]
    nextCursor: str | None  # noqa: N815


class VolumeRow(_Row):
    volume: float


class VolumePage(BaseModel):
    metrics: list[VolumeRow]
    nextCursor: str | None  # noqa: N815


class CoinRow(_Row):
    coin: str
    segmentId: int | None = None  # noqa: N815
    sizeBucketId: int | None = None  # noqa: N815
    positionCount: int  # noqa: N815
    positionCountLong: int  # noqa: N815
    totalPositionValue: float  # noqa: N815
    totalPositionValueLong: float  # noqa: N815
    totalFunding: float  # noqa: N815
    totalUnrealizedPnl: float  # noqa: N815
    totalPositionSize: float  # noqa: N815
    totalPositionSizeLong: float  # noqa: N815


class CoinMetricsPage(BaseModel):
    metrics: list[CoinRow]
    nextCursor: str | None  # noqa: N815


class CoinSummary(BaseModel):
    coin: str
    totalValue: float  # noqa: N815
    totalValueLong: float  # noqa: N815
    totalValueShort: float  # noqa: N815
    count: int
    countLong: int  # noqa: N815
    countShort: int  # noqa: N815


CoinList = list[CoinSummary]


class Segment(BaseModel):
    id: int
    name: str
    category: str
    criteria: dict[str, float | None]
    emoji: str


SegmentList = list[Segment]


class SegmentRef(BaseModel):
    id: int
    name: str
    category: str
    criteria: dict[str, float | None]


class BiasHistory(BaseModel):
    segment: SegmentRef
    nextCursor: str | None  # noqa: N815
    positionRecencyTimeframe: str  # noqa: N815
    start: str
    end: str
    pageStart: str | None  # noqa: N815
    pageEnd: str | None  # noqa: N815
    historySnapshotStructure: list[str]  # noqa: N815
    history: list[list[str | float | None]] = Field(
        description="One row per snapshot, in the order of historySnapshotStructure."
    )


class HeatmapSegment(BaseModel):
    segmentId: int  # noqa: N815
    totalValue: float  # noqa: N815
    totalLongValue: float  # noqa: N815
    totalShortValue: float  # noqa: N815
    count: int
    countLong: int  # noqa: N815
    countShort: int  # noqa: N815
    bias: float | None


class HeatmapCoin(BaseModel):
    coin: str
    totalValue: float  # noqa: N815
    totalLongValue: float  # noqa: N815
    totalShortValue: float  # noqa: N815
    count: int
    countLong: int  # noqa: N815
    countShort: int  # noqa: N815
    segments: list[HeatmapSegment]


class Heatmap(BaseModel):
    heatmap: list[HeatmapCoin]


class RiskItem(BaseModel):
    coin: str
    totalValue: float  # noqa: N815
    riskValue: float  # noqa: N815
    percentRisk: float  # noqa: N815


class LiquidationRisk(BaseModel):
    totalCount: int  # noqa: N815
    items: list[RiskItem]


class IngestHealth(BaseModel):
    state: str = Field(description="idle, running, retrying, failed or stopped")
    reason: str | None
    retries: int
    rejected: int = Field(description="State updates rejected whole since start (each logged with its reason).")


class Health(BaseModel):
    status: str = Field(description="ok (200); empty, stale or ingest_failed (503)")
    height: int | None
    time: str | None
    lagSeconds: float | None  # noqa: N815
    staleAfterSeconds: float  # noqa: N815
    ingest: IngestHealth | None = Field(description="null when this process does not ingest")
    store: dict[str, str]
