"""What each dashboard page shows, read through the service (and the export documents built over it, so a
page's numbers are the API's own for the same state update). Plain dicts and lists for the templates."""

from __future__ import annotations

from typing import Any

from hyperscope.dashboard import history
from hyperscope.domain import formulas
from hyperscope.domain.cohorts import SEGMENTS, SEGMENTS_BY_ID
from hyperscope.domain.coins import dex_of
from hyperscope.domain.recency import TIMEFRAMES
from hyperscope.domain.time import DAY_MS, HOUR_MS
from hyperscope.errors import NotFound
from hyperscope.exports import documents
from hyperscope.service import HistoryQuery, Service
from hyperscope.service.charts import Chart
from hyperscope.store.base import LatestUpdate, Series

RANGES = {"1d": DAY_MS, "7d": 7 * DAY_MS, "30d": 30 * DAY_MS, "all": None}
CHART_WIDTH = 900  # pixels a chart is reduced to (charts.reduce)
CLICK_THROUGH_MAX = 20_000  # positions a heatmap cell lists at most


def _scalar(formula: Any, *values: Any) -> float | None:
    """`formulas.scalar`, None when a value is missing."""
    return None if any(v is None for v in values) else formulas.scalar(formula, *values)


def latest(update: LatestUpdate | None) -> LatestUpdate:
    if update is None:
        raise NotFound("no state update stored yet; the dashboard fills in once ingest writes one")
    return update


def window(update: LatestUpdate, range_name: str) -> tuple[int, int]:
    span = RANGES.get(range_name, DAY_MS)
    return (0 if span is None else update.time - span), update.time


def chart(title: str, data: Chart, series: list[tuple[str, str, str]], kind: str = "line") -> dict[str, Any]:
    """A chart's JSON for app.js: x in seconds, one series per (field, label, colour)."""
    return {
        "title": title,
        "kind": kind,
        "x": [t / 1000 for t in data.times],
        "series": [{"label": label, "color": color, "values": data.values[field]} for field, label, color in series],
        "rows": data.rows,
    }


def market(svc: Service, update: LatestUpdate, range_name: str) -> dict[str, Any]:
    start, end = window(update, range_name)
    general = svc.series_at(Series("general"), update.height)
    g = general[0] if general else {}
    equity = documents.wallets_equity(svc, update.time).body
    volume = svc.series_at(Series("perp_volume"), update.height)
    fields = (
        "open_interest_long",
        "open_interest_short",
        "perp_equity",
        "count_long",
        "count_short",
        "count_in_profit",
    )
    gen = svc.chart(Series("general"), fields, start, end, CHART_WIDTH)
    eq = svc.chart(Series("wallets_equity"), ("total", "perp", "spot", "staking", "vault"), start, end, CHART_WIDTH)
    vol = svc.chart(Series("perp_volume"), ("volume",), start, end, CHART_WIDTH)
    columns = equity["athData"]["columns"]
    return {
        "general": g,
        "oi_to_equity": _scalar(formulas.exposure_ratio, g.get("open_interest"), g.get("perp_equity")) if g else None,
        "volume": volume[0]["volume"] if volume else None,
        "equity_now": dict(zip(columns, equity["history"]["data"][-1][1:], strict=True))
        if equity["history"]["data"]
        else {},
        "equity_ath": dict(zip(columns, equity["athData"]["data"], strict=True)) if equity["athData"]["data"] else {},
        "equity_24h": dict(zip(columns, equity["data24HoursAgo"]["data"], strict=True))
        if equity["data24HoursAgo"]["data"]
        else {},
        "charts": [
            chart(
                "Open interest (USD)",
                gen,
                [("open_interest_long", "long", "#16a34a"), ("open_interest_short", "short", "#dc2626")],
            ),
            chart(
                "Wallets equity (USD)",
                eq,
                [
                    ("total", "total", "#2563eb"),
                    ("perp", "perp", "#7c3aed"),
                    ("spot", "spot", "#0891b2"),
                    ("staking", "staking", "#ca8a04"),
                    ("vault", "vault", "#64748b"),
                ],
            ),
            chart(
                "Open positions",
                gen,
                [
                    ("count_long", "long", "#16a34a"),
                    ("count_short", "short", "#dc2626"),
                    ("count_in_profit", "in profit", "#2563eb"),
                ],
            ),
            chart("OI vs perp equity (USD)", gen, [("perp_equity", "perp equity", "#7c3aed")]),
            chart("Daily perp volume (USD)", vol, [("volume", "24 h volume", "#0891b2")]),
        ],
    }


def sparkline(values: list[float | None], width: int = 120, height: int = 28) -> str:
    """SVG polyline points for a sparkline (no script, no inline style: CSP-safe)."""
    points = [v for v in values if v is not None]
    if len(points) < 2:
        return ""
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    step = width / (len(points) - 1)
    return " ".join(f"{i * step:.1f},{height - (v - low) / span * height:.1f}" for i, v in enumerate(points))


def perps(svc: Service, update: LatestUpdate, dex: str | None, segment: int | None, sort: str, desc: bool) -> dict:
    coins = {r["coin"]: r for r in svc.coins()}
    markets = {m["coin"]: m for m in svc.markets_at(update.height)}
    cohort = {r["coin"]: r for r in svc.coin_segment_rows("all", segment)} if segment else {}
    rows = []
    for coin, c in coins.items():
        m = markets.get(coin, {})
        if dex and dex_of(coin) != dex:
            continue
        value, value_long = c["total_position_value"], c["total_position_value_long"]
        s = cohort.get(coin)
        rows.append(
            {
                "coin": coin,
                "dex": dex_of(coin),
                "oi": value,
                "long_share": value_long / value if value else None,
                "volume": m.get("day_ntl_vlm"),
                "funding": m.get("funding"),
                "funding_annual": m["funding"] * 24 * 365 if m.get("funding") is not None else None,
                "near_liquidation": c["value_close_to_liquidation"],
                "cohort_long_share": s["total_position_value_long"] / s["total_position_value"]
                if s and s["total_position_value"]
                else None,
                "positions": c["position_count"],
            }
        )
    key = sort if rows and sort in rows[0] else "oi"
    rows.sort(key=lambda r: (r[key] is None, r[key] if not desc else _neg(r[key])))
    top = rows[:60]
    lines = svc.charts_by(Series("coin"), "coin", ("total_position_value",), update.time - DAY_MS, update.time, 60)
    for r in top:
        line = lines.get(r["coin"])
        r["spark"] = sparkline(line.values["total_position_value"]) if line else ""
    return {
        "rows": top,
        "count": len(rows),
        "dexes": sorted({dex_of(c) for c in coins}),
        "segments": SEGMENTS,
    }


def _neg(x: Any) -> Any:
    return -x if isinstance(x, int | float) else x


def coin(svc: Service, update: LatestUpdate, name: str, range_name: str) -> dict[str, Any]:
    name = svc.resolve_coin(name)
    start, end = window(update, range_name)
    series = svc.chart(
        Series("coin", coin=name),
        ("total_position_value", "total_position_value_long", "position_count", "position_count_long"),
        start,
        end,
        CHART_WIDTH,
    )
    market_row = svc.market_at(name, update.height) or {}
    liq, _ = history.liquidation_chart(svc, name, update.height)
    rates = svc.funding().market_rates([f"hyperliquid-{name}-future"], max(start, update.time - 30 * DAY_MS), end)
    funding_chart = None
    for _, (times, rate, _db) in rates.items():
        funding_chart = {
            "title": "Funding rate (hourly, /v4 market-funding-rates)",
            "kind": "line",
            "x": [t / 1000 for t in times.tolist()],
            "series": [{"label": "rate", "color": "#ca8a04", "values": [float(r) for r in rate.tolist()]}],
            "rows": len(times),
        }
    positions = svc.positions(
        HistoryQuery(
            start=update.time, end=update.time, limit=50, order_by="value", descending=True, coins=(name,), open=True
        )
    ).rows
    return {
        "coin": name,
        "market": market_row,
        "charts": [
            chart(
                f"{name} open interest (USD)",
                series,
                [("total_position_value_long", "long", "#16a34a"), ("total_position_value", "total", "#2563eb")],
            ),
            chart(
                f"{name} open positions",
                series,
                [("position_count_long", "long", "#16a34a"), ("position_count", "total", "#2563eb")],
            ),
            liq,
            *([funding_chart] if funding_chart else []),
        ],
        "by_size": documents.breakdown_by_size(svc, name, update.height, update.time).body["breakdownBySize"],
        "by_cohort": documents.breakdown_by_cohort(svc, name, update.height, update.time).body["breakdownByCohort"],
        "positions": positions,
    }


def _bias(data: Chart) -> list[float | None]:
    """A cohort's perp bias at each point of its chart (the formula bias-history serves)."""
    v = data.values
    triples = zip(v["open_long_value"], v["open_short_value"], v["active_perp_equity"], strict=True)
    return [_scalar(formulas.perp_bias, lo, sh, eq) for lo, sh, eq in triples]


def cohorts(svc: Service, update: LatestUpdate) -> list[dict[str, Any]]:
    cards = []
    for s in SEGMENTS:
        rows = svc.series_at(Series("segment", segment=s.id, timeframe="all"), update.height)
        r = rows[0] if rows else {}
        history = svc.chart(
            Series("segment", segment=s.id, timeframe="all"),
            ("open_long_value", "open_short_value", "active_perp_equity"),
            update.time - DAY_MS,
            update.time,
            60,
        )
        bias = _bias(history)
        cards.append(
            {
                "segment": s,
                "row": r,
                "bias": _scalar(
                    formulas.perp_bias, r.get("open_long_value"), r.get("open_short_value"), r.get("active_perp_equity")
                )
                if r
                else None,
                "leverage": _scalar(formulas.exposure_ratio, r.get("open_value"), r.get("active_perp_equity"))
                if r
                else None,
                "spark": sparkline(bias),
            }
        )
    return cards


def cohort(svc: Service, update: LatestUpdate, segment: int, range_name: str) -> dict[str, Any]:
    s = SEGMENTS_BY_ID.get(segment)
    if s is None:
        raise NotFound(f"no cohort {segment}; cohorts are 1-16")
    start, end = window(update, range_name)
    data = svc.chart(
        Series("segment", segment=segment, timeframe="all"),
        ("open_long_value", "open_short_value", "active_perp_equity", "open_value"),
        start,
        end,
        CHART_WIDTH,
    )
    bias = _bias(data)
    bias_chart = {
        "title": f"{s.name}: bias",
        "kind": "line",
        "x": [t / 1000 for t in data.times],
        "series": [{"label": "bias", "color": "#7c3aed", "values": bias}],
        "rows": data.rows,
    }
    risk = []
    for r in svc.coin_segment_rows("all", segment):
        if r["total_position_value"]:
            risk.append(
                {
                    "coin": r["coin"],
                    "total": r["total_position_value"],
                    "risk": r["value_close_to_liquidation"],
                    "percent": 100.0 * r["value_close_to_liquidation"] / r["total_position_value"],
                }
            )
    risk.sort(key=lambda i: (-i["percent"], -i["total"], i["coin"]))
    values = chart(
        f"{s.name}: open value (USD)",
        data,
        [("open_long_value", "long", "#16a34a"), ("open_short_value", "short", "#dc2626")],
    )
    return {"segment": s, "charts": [bias_chart, values], "risk": risk[:40]}


def heatmap(svc: Service, update: LatestUpdate, opened_within: str, height: int | None) -> dict[str, Any]:
    if opened_within not in TIMEFRAMES:
        opened_within = "all"
    times = svc.kept_updates(history.SLIDER_STOPS)
    at = height if height in times else update.height
    rows = svc.series_at(Series("coin_segment", timeframe=opened_within), at)
    cells: dict[str, dict[int, dict[str, Any]]] = {}
    totals: dict[str, float] = {}
    for r in rows:
        if r["segment_id"] not in SEGMENTS_BY_ID or not r["position_count"]:
            continue
        cells.setdefault(r["coin"], {})[r["segment_id"]] = r
        totals[r["coin"]] = totals.get(r["coin"], 0.0) + r["total_position_value"]
    coins = sorted(totals, key=lambda c: -totals[c])[:30]
    peak = max((v["total_position_value"] for name in coins for v in cells[name].values()), default=0.0) or 1.0
    grid = []
    for c in coins:
        line: list[dict[str, Any] | None] = []
        for s in SEGMENTS:
            found = cells[c].get(s.id)
            if found is None:
                line.append(None)
                continue
            value, long = found["total_position_value"], found["total_position_value_long"]
            share = long / value if value else 0.5
            line.append(
                {
                    "segment": s.id,
                    "value": value,
                    "count": found["position_count"],
                    "long_share": share,
                    "tone": ("l" if share >= 0.5 else "s") + str(min(5, int(abs(share - 0.5) * 10) + 1)),
                    "size": min(4, int(4 * (value / peak) ** 0.5)),
                }
            )
        grid.append({"coin": c, "cells": line})
    return {
        "grid": grid,
        "segments": SEGMENTS,
        "opened_within": opened_within,
        "timeframes": list(TIMEFRAMES),
        **history.slider(times, at, update),
    }


def cell(svc: Service, update: LatestUpdate, name: str, segment: int, opened_within: str) -> dict[str, Any]:
    """The open positions behind one heatmap cell (coin x cohort, newest update), whose values sum to it."""
    name = svc.resolve_coin(name)
    if segment not in SEGMENTS_BY_ID:
        raise NotFound(f"no cohort {segment}; cohorts are 1-16")
    span = TIMEFRAMES.get(opened_within)
    rows = svc.positions(
        HistoryQuery(
            start=update.time,
            end=update.time,
            limit=CLICK_THROUGH_MAX,
            order_by="value",
            descending=True,
            coins=(name,),
            open=True,
            segment=segment,
        )
    ).rows
    if span is not None:
        rows = [r for r in rows if r["open_time"] >= update.time - span]
    target = svc.series_at(Series("coin_segment", coin=name, segment=segment, timeframe=opened_within), update.height)
    return {
        "coin": name,
        "segment": SEGMENTS_BY_ID[segment],
        "opened_within": opened_within,
        "rows": rows,
        "sum": sum(r["value"] for r in rows),
        "cell": target[0]["total_position_value"] if target else 0.0,
    }


def leaderboard(svc: Service, update: LatestUpdate, period: str) -> dict[str, Any]:
    if period not in documents.PERIODS:
        raise NotFound(f"no leaderboard period {period!r}; one of {', '.join(documents.PERIODS)}")
    body = documents.perp_pnl_leaderboard(svc, period, update.time).body
    return {"period": period, "periods": list(documents.PERIODS), "body": body, "rows": body["data"][:100]}


def wallet(svc: Service, update: LatestUpdate, address: str) -> dict[str, Any]:
    address = address.lower()
    if len(address) != 42 or not address.startswith("0x"):
        raise NotFound("a wallet address is 0x and 40 hex digits")
    profile = svc.wallet(address)

    def query(is_open: bool, order_by: str) -> HistoryQuery:
        return HistoryQuery(
            start=update.time - 30 * DAY_MS,
            end=update.time,
            limit=200,
            addresses=(address,),
            open=is_open,
            order_by=order_by,
            descending=True,
        )

    open_rows = svc.positions(query(True, "value")).rows
    closed = svc.positions(query(False, "close_time")).rows
    segments = [SEGMENTS_BY_ID.get(profile[k]) for k in ("size_segment", "pnl_segment")] if profile else []
    return {
        "address": address,
        "profile": profile,
        "open": open_rows,
        "closed": closed,
        "segments": [s for s in segments if s],
    }


def freshness(update: LatestUpdate | None, now: int, stale_after_ms: int = HOUR_MS) -> dict[str, Any]:
    if update is None:
        return {"height": None, "time": None, "age_s": None, "live": False}
    age = max(0, now - update.time)
    return {"height": update.height, "time": update.time, "age_s": age // 1000, "live": age < stale_after_ms}
