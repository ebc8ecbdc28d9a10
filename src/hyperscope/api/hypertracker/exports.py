"""Files: the export redirects, open positions, 5-minute order snapshots and the PnL leaderboards.

Every file is built once per state update (per subject and format) by `exports.Exports` and reused by
every request until the next update. Exports answer 302 to a signed link valid 120 seconds; the order
snapshots and the leaderboards answer 200 with `{"downloadUrl": ...}`, as upstream documents them. Every
link is absolute: `public_url` when set, else the request's own scheme and host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse

from hyperscope.api import params
from hyperscope.api.auth import scoped
from hyperscope.api.hypertracker.common import EXTERNAL, query_params, service
from hyperscope.api.models import DownloadLink, error_responses
from hyperscope.api.responses import JSONBytes
from hyperscope.api.state import api_state
from hyperscope.api.urls import link_base
from hyperscope.domain.timefmt import iso_ms, now_ms
from hyperscope.errors import BadParameter, NotFound, RetryLater
from hyperscope.exports import FORMATS, Document, documents, open_positions_table
from hyperscope.service import LatestUpdate

exports_router = APIRouter(prefix=EXTERNAL, tags=["exports"], route_class=scoped("exports"))
positions_router = APIRouter(prefix=EXTERNAL, tags=["positions"], route_class=scoped("positions"))
orders_router = APIRouter(prefix=EXTERNAL, tags=["orders"], route_class=scoped("orders"))
leaderboards_router = APIRouter(prefix=EXTERNAL, tags=["leaderboards"], route_class=scoped("leaderboards"))

FORMAT_SCHEMA = {"format": {"type": "string", "enum": list(FORMATS)}}
FORMAT_DOC = "File format: json (default; the upstream shape), csv or parquet (the same rows, flat)."
CSV_FIRST = "csv (default; upstream's columns), json or parquet."
EXPORT_DOCS = query_params("format", schemas=FORMAT_SCHEMA, format=FORMAT_DOC)
COIN_FILES = (
    "position-metrics",
    "position-breakdown-by-size",
    "position-breakdown-by-cohort",
    "positions",
    "liquidation-heatmap",
    "segment-metrics",
)
SNAPSHOT_MS = 300_000
PERIOD_ALIASES = {"24h": "day", "7d": "week", "30d": "month"}  # the names some upstream pages use
REDIRECT: dict[int | str, dict[str, Any]] = {302: {"description": "Redirect to the file (a signed link valid 120 s)."}}


def _format(request: Request, default: str = "json") -> str:
    return params.parse_choice(request.query_params.get("format"), "format", tuple(FORMATS), default)


def _latest(request: Request) -> LatestUpdate:
    latest = service(request).latest()
    if latest is None:
        raise RetryLater("no state update is stored yet; try again once the first one is ingested")
    return latest


def absolute(request: Request, path: str) -> str:
    """An absolute URL of `path` on this API (its base from api/urls.py: never any Host a client sends)."""
    return link_base(request) + path


async def _file_link(
    request: Request, kind: str, subject: str, height: int, name: str, fmt: str, build: Callable[[], Document]
) -> str:
    """An absolute signed link to export `kind` of `subject` at `height` in `fmt`, building it if needed."""
    key_id = request.scope["state"]["api_key"].key_id
    exports = api_state(request).exports

    def make() -> str:
        return exports.get_or_build(f"{kind}.{fmt}", subject, height, key_id, lambda: build().render(fmt), fmt)

    file_id = await run_in_threadpool(make)
    links, filename = api_state(request).links, f"{name.replace(':', '_')}.{fmt}"
    presigned = await run_in_threadpool(exports.files.presigned, file_id, filename, links.signer.ttl)
    if presigned is not None:  # the file store signs its own links (S3)
        return str(presigned)
    return absolute(request, f"/downloads/{links.issue(file_id, filename)}")


# ---------------------------------------------------------------- exports (302)


@exports_router.get(
    "/exports/total-wallets-equity-chart-data",
    status_code=302,
    response_class=RedirectResponse,
    responses={**REDIRECT, **error_responses(400)},
    openapi_extra=EXPORT_DOCS,
)
async def wallets_equity(request: Request) -> RedirectResponse:
    """302 to the total wallets equity file: ATH breakdown, 24 h ago, and 2-hourly history (perp, spot,
    staking, vault, total)."""
    latest, fmt = _latest(request), _format(request)
    reads = service(request)
    url = await _file_link(
        request,
        "wallets-equity",
        "",
        latest.height,
        "total-wallets-equity-chart-data",
        fmt,
        lambda: documents.wallets_equity(reads, latest.time),
    )
    return RedirectResponse(url, status_code=302)


@exports_router.get(
    "/exports/segments-bias-charts-data-24h",
    status_code=302,
    response_class=RedirectResponse,
    responses={**REDIRECT, **error_responses(400)},
    openapi_extra=EXPORT_DOCS,
)
async def segments_bias(request: Request) -> RedirectResponse:
    """302 to every cohort's perp bias (positions opened within 24 h) at each state update of the last 72 h."""
    latest, fmt = _latest(request), _format(request)
    reads = service(request)
    url = await _file_link(
        request,
        "segments-bias-24h",
        "",
        latest.height,
        "segments-bias-charts-data-24h",
        fmt,
        lambda: documents.segments_bias_24h(reads, latest.time),
    )
    return RedirectResponse(url, status_code=302)


@exports_router.get(
    "/exports/coins/{coin}/{file}",
    status_code=302,
    response_class=RedirectResponse,
    responses={**REDIRECT, **error_responses(400, 404)},
    openapi_extra=EXPORT_DOCS,
)
async def coin_export(request: Request, coin: str, file: str) -> RedirectResponse:
    """302 to one coin's file: position-metrics, position-breakdown-by-size, position-breakdown-by-cohort,
    positions (the by-size breakdown), liquidation-heatmap or segment-metrics."""
    svc = service(request)
    if file not in COIN_FILES:
        raise NotFound(f"unknown export {file!r}; per-coin exports are {', '.join(COIN_FILES)}")
    name, fmt = svc.resolve_coin(coin), _format(request)
    latest, reads = _latest(request), svc
    kind = "position-breakdown-by-size" if file == "positions" else file

    def build() -> Document:
        if kind == "position-metrics":
            return documents.position_metrics(reads, name, latest.time)
        if kind == "position-breakdown-by-size":
            return documents.breakdown_by_size(reads, name, latest.height, latest.time)
        if kind == "position-breakdown-by-cohort":
            return documents.breakdown_by_cohort(reads, name, latest.height, latest.time)
        if kind == "segment-metrics":
            return documents.segment_metrics(reads, name, latest.time)
        market = reads.market_at(name, latest.height)
        if market is None:
            raise NotFound(f"no market data for {name} at the newest state update")
        return documents.heatmap(reads, name, market["mark_px"], latest.time)

    url = await _file_link(request, kind, name, latest.height, f"{name}-{file}", fmt, build)
    return RedirectResponse(url, status_code=302)


@positions_router.get(
    "/positions/open/coin/{coin}",
    status_code=302,
    response_class=RedirectResponse,
    responses={**REDIRECT, **error_responses(400, 404)},
    openapi_extra=query_params("format", schemas=FORMAT_SCHEMA, format=CSV_FIRST),
)
async def open_positions(request: Request, coin: str) -> RedirectResponse:
    """302 to every open position of the coin at the newest state update (link valid 120 s).

    A main-dex coin covers Hyperliquid as a whole: its own market and every HIP-3 dex's market of the same
    base coin (e.g. BTC and hyna:BTC; the `coin` and `dex` columns tell them apart). A HIP-3 coin
    (hyna:BTC) covers that market alone."""
    svc = service(request)
    name, fmt = svc.resolve_coin(coin), _format(request, "csv")
    height = _latest(request).height

    def build() -> Document:
        table = open_positions_table(svc.open_positions(name))
        return Document(table.to_pylist() if fmt == "json" else None, table)

    url = await _file_link(request, "open-positions", name, height, f"{name}-open-positions", fmt, build)
    return RedirectResponse(url, status_code=302)


# ---------------------------------------------------------------- order snapshots and leaderboards (200 + link)


def _snapshot_time(request: Request, text: str) -> int:
    """A requested snapshot time, checked against upstream's rules, each failure a 400 naming the rule."""
    reads = service(request)
    at = params.parse_time(text, "snapshotTime")
    if at % SNAPSHOT_MS:
        raise BadParameter(
            "snapshotTime", f"must be on a 5-minute boundary (e.g. {iso_ms(at - at % SNAPSHOT_MS)}), got {text!r}"
        )
    if at > now_ms():
        raise BadParameter("snapshotTime", f"is in the future: {text!r}")
    latest = reads.latest()
    retention = api_state(request).config.orders_retention_ms  # by state-update time, as the store keeps them
    first = reads.first_order_update(latest.time - retention) if latest else None
    earliest = None if first is None else -(-first // SNAPSHOT_MS) * SNAPSHOT_MS
    if earliest is None or at < earliest:
        where = f"the first one kept is {iso_ms(earliest)}" if earliest else "no order snapshot is stored yet"
        raise BadParameter("snapshotTime", f"is before the first order snapshot ({where}), got {text!r}")
    return at


@orders_router.get(
    "/orders/5m-snapshots/{snapshotTime}/download",
    response_class=JSONBytes,
    response_model=DownloadLink,
    responses=error_responses(400),
    openapi_extra=query_params("format", schemas=FORMAT_SCHEMA, format=FORMAT_DOC),
)
async def orders_snapshot(request: Request, snapshotTime: str) -> JSONBytes:  # noqa: N803
    """A link to every open order at a 5-minute snapshot time: the newest state update at or before it.

    The time must be on a 5-minute boundary, not before the first snapshot kept and not in the future."""
    at, fmt = _snapshot_time(request, snapshotTime), _format(request)
    reads = service(request)
    update = reads.order_update(at)
    if update is None:
        raise BadParameter("snapshotTime", "is before the first order snapshot")
    url = await _file_link(
        request,
        "orders",
        str(at),
        update[0],
        f"orders-{iso_ms(at)}",
        fmt,
        lambda: documents.orders_snapshot(reads, update[0], at),
    )
    return JSONBytes({"downloadUrl": url})


@orders_router.get(
    "/orders/5m-snapshots/coins/{coin}/download",
    response_class=JSONBytes,
    response_model=DownloadLink,
    responses=error_responses(400, 404),
    openapi_extra=query_params("format", schemas=FORMAT_SCHEMA, format=FORMAT_DOC),
)
async def orders_latest(request: Request, coin: str) -> JSONBytes:
    """A link to the coin's open orders at the latest 5-minute snapshot."""
    svc = service(request)
    name, fmt = svc.resolve_coin(coin), _format(request)
    latest = _latest(request)
    # the latest snapshot: the 5-minute boundary at or before the newest state update, holding what
    # /orders/5m-snapshots/{that time}/download holds (the newest update with orders at or before it)
    at = latest.time - latest.time % SNAPSHOT_MS
    update = svc.order_update(at)
    if update is None:
        raise NotFound("no order snapshot is stored yet")
    url = await _file_link(
        request,
        "orders-coin",
        name,
        update[0],
        f"{name}-orders-{iso_ms(at)}",
        fmt,
        lambda: documents.orders_snapshot(svc, update[0], at, [name]),
    )
    return JSONBytes({"downloadUrl": url})


@leaderboards_router.get(
    "/leaderboards/perp-pnl/{period}/download",
    response_class=JSONBytes,
    response_model=DownloadLink,
    responses=error_responses(400),
    openapi_extra=query_params("format", schemas=FORMAT_SCHEMA, format=FORMAT_DOC),
)
async def perp_pnl_leaderboard(request: Request, period: str) -> JSONBytes:
    """A link to every wallet's perp PnL over the trailing day, week, month or all time, ranked (24h, 7d and
    30d are accepted for day, week and month)."""
    period = PERIOD_ALIASES.get(period, period)
    if period not in documents.PERIODS:
        raise BadParameter(
            "period", f"expected one of {', '.join(documents.PERIODS)} (or 24h, 7d, 30d), got {period!r}"
        )
    fmt, latest = _format(request), _latest(request)
    reads = service(request)
    url = await _file_link(
        request,
        "perp-pnl",
        period,
        latest.height,
        f"perp-pnl-{period}",
        fmt,
        lambda: documents.perp_pnl_leaderboard(reads, period, latest.time),
    )
    return JSONBytes({"downloadUrl": url})
