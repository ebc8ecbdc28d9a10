"""The read-side queries behind every route, returning plain JSON-ready structures.

Field names and meanings follow the HyperTracker external API; definitions follow semantics.md.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from hyperscope.domain import formulas
from hyperscope.domain.buckets import SIZE_BUCKETS_BY_ID
from hyperscope.domain.cohorts import SEGMENTS, SEGMENTS_BY_ID
from hyperscope.domain.recency import TIMEFRAMES
from hyperscope.domain.timefmt import iso_ms, now_ms
from hyperscope.errors import BadParameter, NotFound
from hyperscope.service.health import IngestState, health
from hyperscope.service.paging import CursorCodec, Window, fingerprint
from hyperscope.store.base import HistoryQuery, Store

TWO_HOURS_MS = 2 * 3_600_000
SIXTY_DAYS_MS = 60 * 86_400_000

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
BIAS_STRUCTURE = ["timestamp", "bias", "exposureRatio", "openValue", "openLongValue", "openShortValue",
                  "activePerpEquity"]  # fmt: skip


def _finite_or_zero(x: float | None) -> float:
    return 0.0 if x is None or math.isnan(x) else float(x)


def _history_record(r: dict[str, Any]) -> dict[str, Any]:
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


class Service:
    def __init__(self, store: Store, cursors: CursorCodec) -> None:
        self.store = store
        self.cursors = cursors
        self._coins: dict[str, str] = {}
        self._coins_height: int | None = None

    # ------------------------------------------------------------ lookups

    def latest_height(self) -> int | None:
        latest = self.store.latest()
        return latest.height if latest else None

    def resolve_coin(self, name: str) -> str:
        """Canonical spelling of a coin, matched case-insensitively; NotFound for an unknown coin."""
        height = self.latest_height()
        if height != self._coins_height or not self._coins:
            self._coins = {row["coin_lower"]: row["coin"] for row in self.store.coins()}
            self._coins_height = height
        coin = self._coins.get(name.strip().lower())
        if coin is None:
            raise NotFound(f"unknown coin {name!r}; GET /api/external/positions/coins lists every coin")
        return coin

    @staticmethod
    def segment(value: int) -> int:
        if value not in SEGMENTS_BY_ID:
            raise NotFound(f"unknown segment {value}; segments are 1-16 (GET /api/external/segments)")
        return value

    @staticmethod
    def bucket(value: int) -> int:
        if value not in SIZE_BUCKETS_BY_ID:
            raise NotFound(f"unknown position size bucket {value}; buckets are 1-10")
        return value

    def health(self, stale_after: float | None, ingest: IngestState | None) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of /health; see service/health.py."""
        return health(self.store.latest(), self.store.backend, stale_after, ingest)

    @staticmethod
    def timeframe(value: str | None, parameter: str) -> str:
        tf = (value or "all").strip().lower()
        if tf not in TIMEFRAMES:
            raise BadParameter(parameter, f"expected one of {', '.join(TIMEFRAMES)}, got {value!r}")
        return tf

    # ------------------------------------------------------------ series

    def _page(
        self, table: str, where: dict[str, Any], window: Window, query: str, fields: tuple[tuple[str, str], ...],
        extra: dict[str, Any] | None = None, key: str = "metrics",
    ) -> dict[str, Any]:  # fmt: skip
        rows = self.store.series(table, where, window.start, window.end, window.before, window.limit + 1)
        more = len(rows) > window.limit
        rows = rows[: window.limit]
        out = []
        for row in rows:
            item: dict[str, Any] = {"id": row["id"], "createdAt": iso_ms(row["created_at"])}
            if extra:
                item.update(extra)
            for name, column in fields:
                item[name] = row[column]
            out.append(item)
        cursor = self.cursors.encode(rows[-1]["created_at"], rows[-1]["id"], query) if more and rows else None
        return {key: out, "nextCursor": cursor}

    def general(self, window: Window, query: str) -> dict[str, Any]:
        return self._page("metrics_general", {}, window, query, GENERAL_FIELDS)

    def perp_volume(self, window: Window, query: str) -> dict[str, Any]:
        return self._page("metrics_perp_volume", {}, window, query, (("volume", "volume"),))

    def coin_series(self, coin: str, window: Window, query: str) -> dict[str, Any]:
        return self._page("metrics_coin", {"coin": coin}, window, query, COIN_FIELDS, {"coin": coin})

    def coin_segment_series(self, coin: str, segment: int, timeframe: str, window: Window, query: str) -> dict:
        where = {"coin": coin, "segment_id": segment, "timeframe": timeframe}
        return self._page("metrics_coin_segment", where, window, query, COIN_FIELDS,
                          {"coin": coin, "segmentId": segment})  # fmt: skip

    def coin_bucket_series(self, coin: str, bucket: int, window: Window, query: str) -> dict[str, Any]:
        where = {"coin": coin, "size_bucket": bucket}
        return self._page("metrics_coin_bucket", where, window, query, COIN_FIELDS,
                          {"coin": coin, "sizeBucketId": bucket})  # fmt: skip

    # ------------------------------------------------------------ snapshots of the latest state update

    def coins(self) -> list[dict[str, Any]]:
        height = self.latest_height()
        if height is None:
            return []
        rows = self.store.rows_at("metrics_coin", {}, height)
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

    def segments(self) -> list[dict[str, Any]]:
        return [
            {"id": s.id, "name": s.name, "category": s.category, "criteria": s.criteria(), "emoji": s.emoji}
            for s in sorted(SEGMENTS, key=lambda s: s.id)
        ]

    def heatmap(self, timeframe: str) -> dict[str, Any]:
        height = self.latest_height()
        if height is None:
            return {"heatmap": []}
        rows = self.store.rows_at("metrics_coin_segment", {"timeframe": timeframe}, height)
        coins: dict[str, dict[str, Any]] = {}
        for r in rows:
            total, long = r["total_position_value"], r["total_position_value_long"]
            seg = {
                "segmentId": r["segment_id"], "totalValue": total, "totalLongValue": long,
                "totalShortValue": total - long, "count": r["position_count"],
                "countLong": r["position_count_long"], "countShort": r["position_count"] - r["position_count_long"],
                "bias": formulas.scalar(formulas.long_fraction, long, total),
            }  # fmt: skip
            entry = coins.setdefault(r["coin"], {"coin": r["coin"], "segments": []})
            entry["segments"].append(seg)
        out = []
        for entry in coins.values():
            # coin totals from the size axis: every position is in exactly one size cohort
            size_rows = [s for s in entry["segments"] if SEGMENTS_BY_ID[s["segmentId"]].category == "size"]
            total = sum(s["totalValue"] for s in size_rows)
            long = sum(s["totalLongValue"] for s in size_rows)
            count = sum(s["count"] for s in size_rows)
            count_long = sum(s["countLong"] for s in size_rows)
            entry["segments"].sort(key=lambda s: s["segmentId"])
            out.append({"coin": entry["coin"], "totalValue": total, "totalLongValue": long,
                        "totalShortValue": total - long, "count": count, "countLong": count_long,
                        "countShort": count - count_long, "segments": entry["segments"]})  # fmt: skip
        out.sort(key=lambda e: (-e["totalValue"], e["coin"]))
        return {"heatmap": out}

    def liquidation_risk(self, segment: int, offset: int, limit: int) -> dict[str, Any]:
        height = self.latest_height()
        if height is None:
            return {"totalCount": 0, "items": []}
        rows = self.store.rows_at("metrics_coin_segment", {"segment_id": segment, "timeframe": "all"}, height)
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

    def bias_history(self, segment: int, timeframe: str, window: Window, query: str, sampled: bool) -> dict[str, Any]:
        where = {"segment_id": segment, "timeframe": timeframe}
        if sampled:
            rows = self.store.sampled_series("metrics_segment", where, window.start, window.end, TWO_HOURS_MS)
            rows, cursor = rows[: window.limit], None
        else:
            fetched = self.store.series("metrics_segment", where, window.start, window.end, window.before,
                                        window.limit + 1)  # fmt: skip
            rows = fetched[: window.limit]
            more = len(fetched) > window.limit
            cursor = self.cursors.encode(rows[-1]["created_at"], rows[-1]["id"], query) if more and rows else None
        s = SEGMENTS_BY_ID[segment]
        history = [
            [
                iso_ms(r["created_at"]),
                formulas.scalar(
                    formulas.perp_bias, r["open_long_value"], r["open_short_value"], r["active_perp_equity"]
                ),
                formulas.scalar(formulas.exposure_ratio, r["open_value"], r["active_perp_equity"]),
                r["open_value"],
                r["open_long_value"],
                r["open_short_value"],
                r["active_perp_equity"],
            ]
            for r in rows
        ]
        return {
            "segment": {"id": s.id, "name": s.name, "category": s.category, "criteria": s.criteria()},
            "nextCursor": cursor,
            "positionRecencyTimeframe": timeframe,
            "start": iso_ms(window.start),
            "end": iso_ms(window.end),
            "pageStart": history[0][0] if history else None,
            "pageEnd": history[-1][0] if history else None,
            "historySnapshotStructure": BIAS_STRUCTURE,
            "history": history,
        }

    def default_bias_window(self) -> Window:
        end = now_ms()
        return Window(start=end - SIXTY_DAYS_MS, end=end, limit=1000, before=None)

    def markets_of(self, coin: str) -> list[str]:
        """The markets a coin's open-positions file covers: a main-dex coin across Hyperliquid (its own
        market and every HIP-3 dex's market of the same base, e.g. BTC and hyna:BTC), a HIP-3 coin alone."""
        if ":" in coin:
            return [coin]
        self.resolve_coin(coin)
        same_base = [c for c in self._coins.values() if c.partition(":")[2] == coin]
        return [coin, *sorted(same_base)]

    def open_positions(self, coin: str) -> Any:
        """The open positions of a coin's markets (`markets_of`) at the newest state update, joined with
        wallet profiles (Arrow)."""
        return self.store.open_positions(self.markets_of(coin))

    def positions(self, query: HistoryQuery, cursor_query: str) -> dict[str, Any]:
        """Historic positions: one consolidated record per lifecycle open during the window (GET /positions)."""
        rows = self.store.position_history(replace(query, limit=query.limit + 1))
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = None
        if more and rows:
            cursor = self.cursors.encode_after(rows[-1]["sort_key"], rows[-1]["key"], cursor_query)
        return {"positions": [_history_record(r) for r in rows], "nextCursor": cursor}

    @staticmethod
    def query_key(*parts: object) -> str:
        return fingerprint(*parts)
