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
    createdAt: str


class GeneralRow(_Row):
    count: int
    countLong: int
    countShort: int
    openInterest: float
    openInterestLong: float
    openInterestShort: float
    perpEquity: float
    countInProfit: int


class GeneralPage(BaseModel):
    metrics: list[GeneralRow]
    nextCursor: str | None


class VolumeRow(_Row):
    volume: float


class VolumePage(BaseModel):
    metrics: list[VolumeRow]
    nextCursor: str | None


class CoinRow(_Row):
    coin: str
    segmentId: int | None = None
    sizeBucketId: int | None = None
    positionCount: int
    positionCountLong: int
    totalPositionValue: float
    totalPositionValueLong: float
    totalFunding: float
    totalUnrealizedPnl: float
    totalPositionSize: float
    totalPositionSizeLong: float


class CoinMetricsPage(BaseModel):
    metrics: list[CoinRow]
    nextCursor: str | None


class CoinSummary(BaseModel):
    coin: str
    totalValue: float
    totalValueLong: float
    totalValueShort: float
    count: int
    countLong: int
    countShort: int


CoinList = list[CoinSummary]


class SegmentRef(BaseModel):
    id: int
    name: str
    category: str
    criteria: dict[str, float | None]


class Segment(SegmentRef):
    emoji: str


SegmentList = list[Segment]


class BiasHistory(BaseModel):
    segment: SegmentRef
    nextCursor: str | None
    positionRecencyTimeframe: str
    start: str
    end: str
    pageStart: str | None
    pageEnd: str | None
    historySnapshotStructure: list[str]
    history: list[list[str | float | None]] = Field(
        description="One row per snapshot, in the order of historySnapshotStructure."
    )


class _Totals(BaseModel):
    totalValue: float
    totalLongValue: float
    totalShortValue: float
    count: int
    countLong: int
    countShort: int


class HeatmapSegment(_Totals):
    segmentId: int
    bias: float | None


class HeatmapCoin(_Totals):
    coin: str
    segments: list[HeatmapSegment]


class Heatmap(BaseModel):
    heatmap: list[HeatmapCoin]


class RiskItem(BaseModel):
    coin: str
    totalValue: float
    riskValue: float
    percentRisk: float


class LiquidationRisk(BaseModel):
    totalCount: int
    items: list[RiskItem]


class IngestHealth(BaseModel):
    state: str = Field(description="idle, running, retrying, failed or stopped")
    reason: str | None
    retries: int
    rejected: int = Field(description="State updates rejected whole since start (each logged with its reason).")
    heartbeatSecondsAgo: float | None = Field(
        None, description="When the ingest is another process: how long ago it last recorded its state."
    )
    process: str | None = Field(None, description="'another' when the ingest is another process (the writer).")


class Health(BaseModel):
    status: str = Field(
        description="ok (200); empty, stale, ingest_failed, ingest_down, store_unavailable or keys_unavailable (503)"
    )
    reason: str | None = Field(None, description="Why the store or the keys cannot answer, when they cannot.")
    height: int | None
    time: str | None
    lagSeconds: float | None
    staleAfterSeconds: float | None = Field(description="null: never stale (a replay of history)")
    ingest: IngestHealth | None = Field(
        description="this process's ingest, else what the store's writer recorded (null when none did)"
    )
    store: dict[str, str]
    source: dict[str, Any] | None = Field(
        None,
        description="what feeds this process (null when it does not ingest): kind, which wallets it covers "
        "(a watch list covers only some: then a coin's long and short need not match), where market data came from",
    )


class PositionProfile(BaseModel):
    address: str
    segments: list[int] = Field(description="The wallet's size cohort and PnL cohort at the time of the record.")


class HistoricPosition(BaseModel):
    address: str
    size: float
    entryPrice: float
    side: str
    crossLeverage: float
    maxLeverage: int | None
    coin: str
    szDecimals: int | None
    markPrice: float
    midPrice: float | None
    premiumPrice: float | None
    assetMaxLeverage: int | None
    positionValue: float
    liquidationPrice: float = Field(description="0 when the position has no liquidation price.")
    unrealizedPnl: float
    funding: float
    openTime: str
    closeTime: str | None = Field(description="null while the position is still open.")
    updatedAt: str
    createdAt: str
    isolatedLeverage: float
    id: str
    dex: str
    profile: PositionProfile


class PositionsPage(BaseModel):
    positions: list[HistoricPosition]
    nextCursor: str | None


class DownloadLink(BaseModel):
    downloadUrl: str = Field(description="Absolute, signed link to the file; it expires after 120 seconds.")
