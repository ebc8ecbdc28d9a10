"""Historic positions: every lifecycle open during a window, one consolidated record each."""

from __future__ import annotations

from fastapi import APIRouter, Request

from hyperscope.api import params
from hyperscope.api.auth import scoped
from hyperscope.api.hypertracker import shape
from hyperscope.api.hypertracker.common import EXTERNAL, cached, query_params, service
from hyperscope.api.models import PositionsPage, error_responses
from hyperscope.api.responses import JSONBytes
from hyperscope.domain.timefmt import now_ms
from hyperscope.errors import BadParameter
from hyperscope.service import HistoryQuery
from hyperscope.service.paging import MAX_LIMIT

router = APIRouter(prefix=EXTERNAL, tags=["positions"], route_class=scoped("positions"))
# the API's sort words -> the store's (the service and store speak no API words)
SORTS = {"openTime": "open_time", "closeTime": "close_time", "pnl": "unrealized_pnl", "value": "value", "size": "size"}
ORDER_BY = tuple(SORTS)
READS = ("start", "end", "limit", "nextCursor", "coin", "address", "open", "segmentId", "orderBy", "order")
DOCS = query_params(
    *READS,
    schemas={
        "coin": {"type": "string", "minLength": 1},
        "address": {"type": "array", "items": {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}},
        "open": {"type": "string", "enum": ["true", "false"]},
        "segmentId": {"type": "integer", "minimum": 1, "maximum": 16},
        "orderBy": {"type": "string", "enum": list(ORDER_BY)},
        "order": {"type": "string", "enum": ["asc", "desc"]},
        "start": {"type": "string", "example": "2026-02-10T12:00:00Z"},
        "end": {"type": "string", "example": "2026-02-11T12:00:00Z"},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        "nextCursor": {"type": "string", "minLength": 1},
    },
    start="Start of the window (ISO 8601); a position matches when it was open at some moment of the "
    "window. Default: all stored history.",
    coin="One coin (market), e.g. BTC or xyz:GOLD; case-insensitive.",
    address="Wallet address; repeat the parameter (or separate with commas) for several.",
    open="true: only positions still open; false: only closed ones; omitted: both.",
    segmentId="Only positions of wallets in this cohort (1-16) at the time of the record.",
    orderBy="Sort key: openTime (default), closeTime (open positions last), pnl (unrealized), value, size.",
    order="asc or desc; default asc for openTime and closeTime, desc for pnl, value and size.",
)


@router.get(
    "/positions",
    response_class=JSONBytes,
    response_model=PositionsPage,
    responses=error_responses(400, 404),
    openapi_extra=DOCS,
)
async def positions(request: Request) -> JSONBytes:
    """Historic positions: one record per position lifecycle open during the window, open or closed."""

    def build() -> dict:
        svc, q = service(request), request.query_params
        start = params.parse_time(q["start"], "start") if q.get("start") else 0
        end = params.parse_time(q["end"], "end") if q.get("end") else now_ms()
        if start > end:
            raise BadParameter("start", "is after end")
        order_by = params.parse_choice(q.get("orderBy"), "orderBy", ORDER_BY, "openTime")
        default_order = "asc" if order_by in ("openTime", "closeTime") else "desc"
        order = params.parse_choice(q.get("order"), "order", ("asc", "desc"), default_order)
        segment = q.get("segmentId")
        query = HistoryQuery(
            start=start,
            end=end,
            limit=params.parse_int(q.get("limit"), "limit", MAX_LIMIT, 1, MAX_LIMIT),
            order_by=SORTS[order_by],
            descending=order == "desc",
            coins=(svc.resolve_coin(q["coin"]),) if q.get("coin") else None,
            addresses=params.parse_addresses(q.getlist("address")),
            open=params.parse_bool(q.get("open"), "open"),
            segment=params.parse_int(segment, "segmentId", 0, 1, 16) if segment else None,
        )
        key = svc.query_key(
            request.scope["path"],
            start,
            end if q.get("end") else None,
            order_by,
            order,
            query.coins,
            query.addresses,
            query.open,
            query.segment,
        )
        if q.get("nextCursor"):
            query = HistoryQuery(
                **{**query.__dict__, "after": params.cursor_of(svc.cursors.decode_after, q["nextCursor"], key)}
            )
        return shape.positions(svc.positions(query), svc.cursors, key)

    return cached(request, build, READS)
