"""/v4 routes: asset and exchange-asset funding metrics, raw market funding rates, catalogs, reference data.

Coin Metrics' conventions throughout: `{"data", "next_page_token", "next_page_url"}`, entity and `time`
first, numbers as strings, nanosecond times, `page_size` (100, at most 10000), `paging_from` (`end` by
default), `limit_per_*`, `sort`, `format=json|csv|json_stream` (NDJSON, no paging), `pretty`,
`null_as_zero`, and errors as `{"error": {"type", "message"}}`. Keys come as `api_key=` or a bearer header;
the router's route class (`scoped("funding")`) checks the scope.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from hyperscope.api.auth import scoped
from hyperscope.api.coinmetrics import shape
from hyperscope.api.coinmetrics.docs import REFERENCE, RESPONSES, WINDOW, documented
from hyperscope.api.coinmetrics.params import entities_of, funding, metrics_of, window_of
from hyperscope.api.coinmetrics.shape import CMBadParameter
from hyperscope.api.coinmetrics.table import MarketTable, Table, respond
from hyperscope.api.state import api_state
from hyperscope.api.urls import link_base
from hyperscope.domain.time import DAY_MS
from hyperscope.service.funding import (
    ALIASES,
    FUNDING_INTERVAL_MS,
    METRICS,
    Series,
    supported,
)

router = APIRouter(prefix="/v4", tags=["coinmetrics"], route_class=scoped("funding"))


async def _timeseries(
    request: Request, kind: str, parameter: str, entity_key: str, limit_param: str, sorts: tuple[str, ...]
) -> Response:
    def build() -> Response:
        svc, q = funding(request), request.query_params
        universe = svc.universe()
        names, metrics, deprecated = metrics_of(request)
        what = "Exchange-asset pair" if kind == "exchange_asset" else "Value"
        entities = entities_of(request, parameter, universe.members(kind), what)
        frequency = shape.parse_choice(q.get("frequency"), "frequency", ("1h", "1d"), "1d")
        sort = shape.parse_choice(q.get("sort"), "sort", sorts, sorts[0])
        supports = {m: {e for e in entities if supported(universe, kind, e, m)} for m in metrics}
        if not any(supports.values()):
            raise CMBadParameter(
                "metrics", f"None of the requested metrics is supported for the requested {parameter}."
            )
        start, end = window_of(request)
        series = svc.series(kind, entities, sorted(set(metrics)), start, end)
        table = Table(entities, names, metrics, series, supports, frequency, sort_time=sort == "time")
        return respond(request, table, entity_key, limit_param, deprecated)

    return await _cached(request, build)


async def _cached(request: Request, build: Any) -> Response:
    """JSON pages come from the response cache (until the next state update); other formats are built."""
    q = request.query_params
    if q.get("format", "json") != "json":
        return await run_in_threadpool(build)
    key = (request.url.path, link_base(request), tuple(sorted((k, v) for k, v in q.multi_items() if k != "api_key")))
    latest = api_state(request).service.latest()
    cache = api_state(request).cache
    body = await run_in_threadpool(cache.get_or_build, latest.height if latest else None, key, lambda: build().body)
    deprecated = any(m.strip() in ALIASES for m in (q.get("metrics") or "").split(","))
    return Response(body, media_type="application/json", headers={"Deprecation": "true"} if deprecated else {})


@router.get(
    "/timeseries/asset-metrics",
    response_class=Response,
    responses=RESPONSES,
    openapi_extra=documented(
        "assets",
        "metrics",
        "frequency",
        "sort",
        "limit_per_asset",
        "null_as_zero",
        *WINDOW,
        required=("assets", "metrics"),
    ),
)
async def asset_metrics(request: Request) -> Response:
    """Funding-rate metrics per asset (every dex's markets of the base coin), at 1h or 1d."""
    return await _timeseries(request, "asset", "assets", "asset", "limit_per_asset", ("asset", "time"))


@router.get(
    "/timeseries/exchange-asset-metrics",
    response_class=Response,
    responses=RESPONSES,
    openapi_extra=documented(
        "exchange_assets",
        "metrics",
        "frequency",
        "sort",
        "limit_per_exchange_asset",
        *WINDOW,
        required=("exchange_assets", "metrics"),
    ),
)
async def exchange_asset_metrics(request: Request) -> Response:
    """Funding-rate metrics per exchange-asset (one dex's market of the base coin), at 1h or 1d."""
    return await _timeseries(
        request,
        "exchange_asset",
        "exchange_assets",
        "exchange_asset",
        "limit_per_exchange_asset",
        ("exchange_asset", "time"),
    )


@router.get(
    "/timeseries/market-funding-rates",
    response_class=Response,
    responses=RESPONSES,
    openapi_extra=documented("markets", "limit_per_market", *WINDOW, required=("markets",)),
)
async def market_funding_rates(request: Request) -> Response:
    """The raw hourly funding rate of each market, as Hyperliquid settles it (period and interval 1 hour)."""

    def build() -> Response:
        svc = funding(request)
        universe = svc.universe()
        markets = entities_of(request, "markets", universe.markets, "Market")
        start, end = window_of(request)
        rates = svc.market_rates(markets, start, end)
        series = {m: Series(t, {"rate": r, "database_time": d.astype(np.float64)}) for m, (t, r, d) in rates.items()}
        supports = {"rate": set(markets), "database_time": set(markets)}
        table = Table(
            markets, ["rate", "database_time"], ["rate", "database_time"], series, supports, "1h", sort_time=False
        )
        return respond(request, MarketTable.wrap(table), "market", "limit_per_market", False)

    return await _cached(request, build)


# ---------------------------------------------------------------- catalogs and reference data


def _plain(request: Request, rows: list[dict[str, Any]]) -> Response:
    """A catalog answer: every row in one page (json) or as NDJSON (json_stream)."""
    q = request.query_params
    fmt = shape.parse_choice(q.get("format"), "format", ("json", "json_stream"), "json")
    pretty = shape.parse_bool(q.get("pretty"), "pretty", False)  # checked whatever the format
    if fmt == "json_stream":
        return Response(b"".join(orjson.dumps(r) + b"\n" for r in rows), media_type="application/x-ndjson")
    option = orjson.OPT_INDENT_2 if pretty else 0
    return Response(orjson.dumps({"data": rows}, option=option), media_type="application/json")


def _frequencies(first: int, last: int) -> list[dict[str, str]]:
    day_first = -(-first // DAY_MS) * DAY_MS
    out = [{"frequency": "1h", "min_time": shape.time_out(first), "max_time": shape.time_out(last)}]
    if day_first <= last:
        out.append(
            {
                "frequency": "1d",
                "min_time": shape.time_out(day_first),
                "max_time": shape.time_out(last // DAY_MS * DAY_MS),
            }
        )
    return out


def _catalog(request: Request, kind: str, parameter: str, entity_key: str) -> Response:
    svc = funding(request)
    universe = svc.universe()
    members = universe.members(kind)
    wanted = entities_of(request, parameter, members) if request.query_params.get(parameter) else sorted(members)
    asked = request.query_params.get("metrics")
    metrics = [ALIASES.get(m, m) for m in shape.parse_list(asked, "metrics")] if asked else list(METRICS)
    coverage = svc.coverage()
    rows = []
    for entity in wanted:
        spans = [coverage[c] for c in members[entity] if c in coverage]
        if not spans:
            continue
        first, last = min(s[0] for s in spans), max(s[1] for s in spans)
        listed = [
            {"metric": m, "frequencies": _frequencies(first, last)}
            for m in metrics
            if m in METRICS and supported(universe, kind, entity, m)
        ]
        if listed:
            rows.append({entity_key: entity, "metrics": listed})
    return _plain(request, rows)


@router.get(
    "/catalog-v2/asset-metrics",
    response_class=Response,
    responses=RESPONSES,
    openapi_extra=documented("assets", "metrics", "format", "pretty", "api_key"),
)
async def catalog_asset_metrics(request: Request) -> Response:
    """Which funding metrics each asset has, at which frequencies, from when to when."""
    return await run_in_threadpool(_catalog, request, "asset", "assets", "asset")


@router.get(
    "/catalog-v2/exchange-asset-metrics",
    response_class=Response,
    responses=RESPONSES,
    openapi_extra=documented("exchange_assets", "metrics", "format", "pretty", "api_key"),
)
async def catalog_exchange_asset_metrics(request: Request) -> Response:
    """Which funding metrics each exchange-asset has, at which frequencies, from when to when."""
    return await run_in_threadpool(_catalog, request, "exchange_asset", "exchange_assets", "exchange_asset")


@router.get(
    "/catalog-v2/market-funding-rates",
    response_class=Response,
    responses=RESPONSES,
    openapi_extra=documented("markets", "format", "pretty", "api_key"),
)
async def catalog_market_funding_rates(request: Request) -> Response:
    """Every market with funding rates and the span they cover."""

    def build() -> Response:
        svc = funding(request)
        universe = svc.universe()
        wanted = (
            entities_of(request, "markets", universe.markets, "Market")
            if request.query_params.get("markets")
            else sorted(universe.markets)
        )
        coverage = svc.coverage()
        end = FUNDING_INTERVAL_MS  # rates are stamped at the end of their funding interval
        rows = [
            {
                "market": m,
                "min_time": shape.time_out(coverage[universe.markets[m]][0] + end),
                "max_time": shape.time_out(coverage[universe.markets[m]][1] + end),
            }
            for m in wanted
            if universe.markets[m] in coverage
        ]
        return _plain(request, rows)

    return await run_in_threadpool(build)


@router.get(
    "/reference-data/asset-metrics",
    response_class=Response,
    responses=RESPONSES,
    openapi_extra=documented("metrics", "format", "pretty", "api_key"),
)
async def reference_asset_metrics(request: Request) -> Response:
    """What each funding metric means (Market / Futures, dimensionless)."""
    asked = request.query_params.get("metrics")
    metrics = [ALIASES.get(m, m) for m in shape.parse_list(asked, "metrics")] if asked else list(METRICS)
    rows = [
        {
            "metric": m,
            "full_name": REFERENCE[m][0],
            "description": REFERENCE[m][1],
            "product": "Market Data",
            "category": "Market",
            "subcategory": "Futures",
            "unit": "Dimensionless",
            "data_type": "decimal",
            "type": "Percentage",
            "display_name": REFERENCE[m][0],
            "docs_url": "docs/api.md#funding-rates-coin-metrics-api-v4",
        }
        for m in metrics
        if m in METRICS
    ]
    return _plain(request, rows)
