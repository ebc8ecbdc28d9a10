"""HyperTracker's JSON from the service's plain rows: camelCase fields, `nextCursor`, and its error hints."""

from __future__ import annotations

import math
from typing import Any

from hyperscope.domain import formulas
from hyperscope.domain.cohorts import SEGMENTS_BY_ID, Segment
from hyperscope.domain.timefmt import iso_ms
from hyperscope.errors import HyperscopeError
from hyperscope.service.paging import CursorCodec, Window
from hyperscope.service.queries import Page, UnknownBucket, UnknownCoin, UnknownSegment

COIN_FIELDS = (
    ("positionCount", "position_count"),
    ("positionCountLong", "position_count_long"),
    ("totalPositionValue", "total_position_value"),
    ("totalPositionValueLong", "total_position_value_long"),
    ("totalFunding", "total_funding"),
    ("totalUnrealizedPnl", "total_unrealized_pnl"),
    ("totalPositionSize", "total_position_size"),
    ("totalPositionSizeLong", "total_position_size_long"),
)
GENERAL_FIELDS = (
    ("count", "count"),
    ("countLong", "count_long"),
    ("countShort", "count_short"),
    ("openInterest", "open_interest"),
    ("openInterestLong", "open_interest_long"),
    ("openInterestShort", "open_interest_short"),
    ("perpEquity", "perp_equity"),
    ("countInProfit", "count_in_profit"),
)
VOLUME_FIELDS = (("volume", "volume"),)
BIAS_STRUCTURE = [
    "timestamp",
    "bias",
    "exposureRatio",
    "openValue",
    "openLongValue",
    "openShortValue",
    "activePerpEquity",
]
HINTS = {
    UnknownCoin: "GET /api/external/positions/coins lists every coin",
    UnknownSegment: "segments are 1-16 (GET /api/external/segments)",
    UnknownBucket: "buckets are 1-10",
}


def hint(error: HyperscopeError) -> str:
    """The error's message with the route that answers the question, where there is one."""
    for kind, text in HINTS.items():
        if isinstance(error, kind):
            return f"{error.message}; {text}"
    return error.message


def series(
    page: Page,
    fields: tuple[tuple[str, str], ...],
    cursors: CursorCodec,
    query: str,
    extra: dict[str, Any] | None = None,
    key: str = "metrics",
) -> dict[str, Any]:
    out = []
    for row in page.rows:
        item: dict[str, Any] = {"id": row["id"], "createdAt": iso_ms(row["created_at"])}
        if extra:
            item.update(extra)
        for name, column in fields:
            item[name] = row[column]
        out.append(item)
    last = page.rows[-1] if page.rows else None
    cursor = cursors.encode(last["created_at"], last["id"], query) if page.more and last else None
    return {key: out, "nextCursor": cursor}


def coins(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [
        {
            "coin": r["coin"],
            "totalValue": r["total_position_value"],
            "totalValueLong": r["total_position_value_long"],
            "totalValueShort": r["total_position_value"] - r["total_position_value_long"],
            "count": r["position_count"],
            "countLong": r["position_count_long"],
            "countShort": r["position_count"] - r["position_count_long"],
        }
        for r in rows
    ]
    out.sort(key=lambda r: (-r["totalValue"], r["coin"]))
    return out


def segments(items: list[Segment]) -> list[dict[str, Any]]:
    return [
        {"id": s.id, "name": s.name, "category": s.category, "criteria": s.criteria(), "emoji": s.emoji} for s in items
    ]


def heatmap(rows: list[dict[str, Any]]) -> dict[str, Any]:
    coins_: dict[str, dict[str, Any]] = {}
    for r in rows:
        total, long = r["total_position_value"], r["total_position_value_long"]
        seg = {
            "segmentId": r["segment_id"],
            "totalValue": total,
            "totalLongValue": long,
            "totalShortValue": total - long,
            "count": r["position_count"],
            "countLong": r["position_count_long"],
            "countShort": r["position_count"] - r["position_count_long"],
            "bias": formulas.scalar(formulas.long_fraction, long, total),
        }
        entry = coins_.setdefault(r["coin"], {"coin": r["coin"], "segments": []})
        entry["segments"].append(seg)
    out = []
    for entry in coins_.values():
        # coin totals from the size axis: every position is in exactly one size cohort
        size_rows = [s for s in entry["segments"] if SEGMENTS_BY_ID[s["segmentId"]].category == "size"]
        total = sum(s["totalValue"] for s in size_rows)
        long = sum(s["totalLongValue"] for s in size_rows)
        count = sum(s["count"] for s in size_rows)
        count_long = sum(s["countLong"] for s in size_rows)
        entry["segments"].sort(key=lambda s: s["segmentId"])
        out.append(
            {
                "coin": entry["coin"],
                "totalValue": total,
                "totalLongValue": long,
                "totalShortValue": total - long,
                "count": count,
                "countLong": count_long,
                "countShort": count - count_long,
                "segments": entry["segments"],
            }
        )
    out.sort(key=lambda e: (-e["totalValue"], e["coin"]))
    return {"heatmap": out}


def liquidation_risk(rows: list[dict[str, Any]], offset: int, limit: int) -> dict[str, Any]:
    items = [
        {
            "coin": r["coin"],
            "totalValue": r["total_position_value"],
            "riskValue": r["value_close_to_liquidation"],
            "percentRisk": 100.0 * r["value_close_to_liquidation"] / r["total_position_value"]
            if r["total_position_value"]
            else 0.0,
        }
        for r in rows
    ]
    items.sort(key=lambda i: (-i["percentRisk"], -i["totalValue"], i["coin"]))
    return {"totalCount": len(items), "items": items[offset : offset + limit]}


def bias_history(
    page: Page, segment: int, timeframe: str, window: Window, cursors: CursorCodec, query: str
) -> dict[str, Any]:
    s = SEGMENTS_BY_ID[segment]
    history = [
        [
            iso_ms(r["created_at"]),
            formulas.scalar(formulas.perp_bias, r["open_long_value"], r["open_short_value"], r["active_perp_equity"]),
            formulas.scalar(formulas.exposure_ratio, r["open_value"], r["active_perp_equity"]),
            r["open_value"],
            r["open_long_value"],
            r["open_short_value"],
            r["active_perp_equity"],
        ]
        for r in page.rows
    ]
    last = page.rows[-1] if page.rows else None
    return {
        "segment": {"id": s.id, "name": s.name, "category": s.category, "criteria": s.criteria()},
        "nextCursor": cursors.encode(last["created_at"], last["id"], query) if page.more and last else None,
        "positionRecencyTimeframe": timeframe,
        "start": iso_ms(window.start),
        "end": iso_ms(window.end),
        "pageStart": history[0][0] if history else None,
        "pageEnd": history[-1][0] if history else None,
        "historySnapshotStructure": BIAS_STRUCTURE,
        "history": history,
    }


def _finite_or_zero(x: float | None) -> float:
    return 0.0 if x is None or math.isnan(x) else float(x)


def position(r: dict[str, Any]) -> dict[str, Any]:
    """One lifecycle as /positions serves it (the field order of the upstream example)."""
    cross = r["leverage_type"] == "cross"
    max_leverage = r["max_leverage"]
    leverage = int(round(r["leverage"]))  # Hyperliquid leverage settings are whole numbers
    return {
        "address": r["address"],
        "size": r["size"],
        "entryPrice": r["entry_px"],
        "side": r["side"],
        "crossLeverage": leverage if cross else 0,
        "maxLeverage": max_leverage,
        "coin": r["coin"],
        "szDecimals": r["sz_decimals"],
        "markPrice": r["mark_px"],
        "midPrice": r["mid_px"],
        "premiumPrice": r["premium"],
        "assetMaxLeverage": max_leverage,
        "positionValue": r["value"],
        "liquidationPrice": _finite_or_zero(r["liquidation_px"]),
        "unrealizedPnl": r["unrealized_pnl"],
        "funding": r["funding"],
        "openTime": iso_ms(r["open_time"]),
        "closeTime": iso_ms(r["close_time"]) if r["close_time"] is not None else None,
        "updatedAt": iso_ms(r["updated_at"]),
        "createdAt": iso_ms(r["created_at"]),
        "isolatedLeverage": 0 if cross else leverage,
        "id": r["id"],
        "dex": r["dex"],
        "profile": {"address": r["address"], "segments": [r["size_segment"], r["pnl_segment"]]},
    }


def positions(page: Page, cursors: CursorCodec, query: str) -> dict[str, Any]:
    last = page.rows[-1] if page.rows else None
    cursor = cursors.encode_after(last["sort_key"], last["key"], query) if page.more and last else None
    return {"positions": [position(r) for r in page.rows], "nextCursor": cursor}
