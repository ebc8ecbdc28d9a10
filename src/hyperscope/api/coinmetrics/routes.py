"""/v4 routes: asset and exchange-asset funding metrics, raw market funding rates, catalogs, reference data.

Coin Metrics' conventions throughout: `{"data", "next_page_token", "next_page_url"}`, entity and `time`
first, numbers as strings, nanosecond times, `page_size` (100, at most 10000), `paging_from` (`end` by
default), `limit_per_*`, `sort`, `format=json|csv|json_stream` (NDJSON, no paging), `pretty`,
`null_as_zero`, and errors as `{"error": {"type", "message"}}`. Keys come as `api_key=` or a bearer header;
the router's route class (`scoped("funding")`) checks the scope.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from hyperscope.api.auth import scoped
from hyperscope.api.coinmetrics import shape
from hyperscope.api.coinmetrics.shape import CMBadParameter, unsupported
from hyperscope.api.urls import link_base
from hyperscope.domain.time import DAY_MS, HOUR_MS
from hyperscope.domain.timefmt import now_ms
from hyperscope.service.funding import (
    ALIASES,
    FUNDING_INTERVAL_MS,
    METRICS,
    FundingService,
    Series,
    supported,
)

router = APIRouter(prefix="/v4", tags=["coinmetrics"], route_class=scoped("funding"))
_ERROR = {"type": "object", "properties": {"error": {"type": "object", "required": ["type", "message"], "properties": {
    "type": {"type": "string"}, "message": {"type": "string"}}}}, "required": ["error"]}  # fmt: skip
_STATUSES = {400: "A parameter is malformed or not supported (named in the message).",
             401: "Missing (unauthorized) or unknown (wrong_credentials) API key.",
             403: "The key has no access to the funding scope.", 429: "Rate limited; see x-ratelimit-reset.",
             503: "The store cannot answer right now; retry."}  # fmt: skip
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"schema": {"type": "object"}}, "text/csv": {"schema": {"type": "string"}},
                      "application/x-ndjson": {"schema": {"type": "string"}}}},
    **{code: {"description": text, "content": {"application/json": {"schema": _ERROR}}}
       for code, text in _STATUSES.items()},
}  # fmt: skip
_STRING = {"type": "string"}
_PARAMS = {
    "assets": ("Assets, comma-separated (btc,eth) or *.", _STRING),
    "exchange_assets": ("Exchange-assets, comma-separated (hyperliquid-btc,hyperliquid-xyz-gold) or *.", _STRING),
    "markets": ("Markets, comma-separated (hyperliquid-BTC-future) or *.", _STRING),
    "metrics": ("Metric ids, comma-separated (see /v4/reference-data/asset-metrics).", _STRING),
    "frequency": ("1h or 1d (default; the 1h value at 00:00 UTC).", {"type": "string", "enum": ["1h", "1d"]}),
    "start_time": ("Start: 2006-01-20T00:00:00Z, ...00.000Z, ...00.123456Z, ...00.123456789Z, 2006-01-20 or "
                   "20060120.", _STRING),
    "end_time": ("End, in the same forms; now when omitted.", _STRING),
    "start_inclusive": ("Include start_time (default true).", {"type": "string", "enum": ["true", "false"]}),
    "end_inclusive": ("Include end_time (default true).", {"type": "string", "enum": ["true", "false"]}),
    "timezone": ("Time zone of times given without one (tz database name; default UTC).", _STRING),
    "page_size": ("Rows per page, 1-10000 (default 100).", {"type": "integer", "minimum": 1, "maximum": 10000}),
    "paging_from": ("start or end (default: the first page is the latest rows).",
                    {"type": "string", "enum": ["start", "end"]}),
    "sort": ("Order of rows: by entity (default) or by time.", _STRING),
    "limit_per_asset": ("The latest N rows of each asset.", {"type": "integer", "minimum": 1}),
    "limit_per_exchange_asset": ("The latest N rows of each exchange-asset.", {"type": "integer", "minimum": 1}),
    "limit_per_market": ("The latest N rows of each market.", {"type": "integer", "minimum": 1}),
    "format": ("json (default), csv or json_stream (NDJSON, every row, no paging).",
               {"type": "string", "enum": ["json", "csv", "json_stream"]}),
    "pretty": ("Indented JSON.", {"type": "string", "enum": ["true", "false"]}),
    "null_as_zero": ("Write 0 where a supported metric has no value.", {"type": "string", "enum": ["true", "false"]}),
    "next_page_token": ("The next_page_token of the previous page (keep every other parameter).", _STRING),
    "api_key": ("Your API key (or send Authorization: Bearer <key>).", _STRING),
}  # fmt: skip


def documented(*names: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"parameters": [{"name": n, "in": "query", "required": n in required, "description": _PARAMS[n][0],
                            "schema": _PARAMS[n][1]} for n in names]}  # fmt: skip


_WINDOW = ("start_time", "end_time", "start_inclusive", "end_inclusive", "timezone", "page_size", "paging_from",
           "format", "pretty", "next_page_token", "api_key")  # fmt: skip
REFERENCE = {  # metric -> (full name, description); category Market, subcategory Futures, as Coin Metrics files them
    **{m: (f"Funding rate, aggregated, futures, {margin.upper() if margin != 'all' else 'all'}-margined, "
           f"{span.replace('h', ' hours').replace('d', ' days').replace('1y', '1 year')}",
           "The open-interest-weighted average funding rate of the asset's perpetual futures markets, as an "
           + ("8-hour rate." if span == "8h" else f"8-hour rate rescaled linearly to {span}."))
       for m, (kind, margin, span) in METRICS.items() if kind == "aggregate"},
    **{m: (f"Funding rate, cumulative, futures, {margin}-margined, rolling {span}",
           f"The aggregated hourly funding rate compounded over the trailing {span} (missing hours skipped).")
       for m, (kind, margin, span) in METRICS.items() if kind == "cumulative"},
}  # fmt: skip


def funding(request: Request) -> FundingService:
    return request.app.state.funding


def _metrics(request: Request) -> tuple[list[str], list[str], bool]:
    """(requested names, current names, any deprecated alias used)."""
    asked = shape.parse_list(request.query_params.get("metrics"), "metrics")
    current = []
    for name in asked:
        real = ALIASES.get(name, name)
        if real not in METRICS:
            raise unsupported("metrics", name)
        current.append(real)
    return asked, current, any(name in ALIASES for name in asked)


def _entities(request: Request, parameter: str, known: dict[str, Any], what: str = "Value") -> list[str]:
    """The ids asked for: a list of ids and patterns, `*` standing for any text (`*`, `hyperliquid-*`,
    `*-btc`, `hyperliquid-*-future`), matched regardless of case as Coin Metrics does. An id we do not serve,
    or a pattern that matches none, is a 400 naming it."""
    asked = shape.parse_list(request.query_params.get(parameter), parameter)
    chosen: set[str] = set()
    lower = {k.lower(): k for k in known}
    for entity in asked:
        if "*" in entity:
            pattern = re.compile(".*".join(re.escape(part) for part in entity.lower().split("*")))
            matched = [k for low, k in lower.items() if pattern.fullmatch(low)]
            if not matched:
                raise unsupported(parameter, entity, what)
            chosen.update(matched)
        elif entity in known:
            chosen.add(entity)
        elif entity.lower() in lower:
            chosen.add(lower[entity.lower()])
        else:
            raise unsupported(parameter, entity, what)
    return sorted(chosen)


def _window(request: Request) -> tuple[int, int]:
    q = request.query_params
    zone = q.get("timezone")
    if zone:
        shape.time_in("2006-01-20", "timezone", zone)  # an unknown zone is a 400 even without times
    start = shape.time_in(q["start_time"], "start_time", zone) if q.get("start_time") else 0
    end = shape.time_in(q["end_time"], "end_time", zone) if q.get("end_time") else now_ms()
    if not shape.parse_bool(q.get("start_inclusive"), "start_inclusive", True):
        start += 1
    if not shape.parse_bool(q.get("end_inclusive"), "end_inclusive", True):
        end -= 1
    if start > end:
        raise CMBadParameter("start_time", "Value is after end_time.")
    return start, end


def _query_key(request: Request) -> str:
    """What a page token is bound to: every parameter but the token, the key and the page size."""
    q = request.query_params
    kept = sorted((k, v) for k, v in q.multi_items() if k not in ("next_page_token", "api_key", "page_size"))
    return request.url.path + "?" + urlencode(kept)


def _buffer_bytes(strings: pa.Array) -> bytes:
    """The concatenated values of an Arrow string array without nulls, straight from its data buffer."""
    if len(strings) == 0:
        return b""
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32, count=len(strings) + 1, offset=strings.offset * 4)
    return strings.buffers()[2].to_pybytes()[int(offsets[0]) : int(offsets[-1])]


class Table:
    """Rows as parallel arrays: entity index, time, and per metric a value column plus which entities
    support it; ordered by the route's sort."""

    def __init__(self, entities: list[str], names: list[str], metrics: list[str], series: dict[str, Series],
                 supports: dict[str, set[str]], frequency: str, sort_time: bool) -> None:  # fmt: skip
        self.entities, self.names, self.metrics, self.supports = entities, names, metrics, supports
        idx: list[np.ndarray] = []
        times: list[np.ndarray] = []
        cols: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
        for e, entity in enumerate(entities):
            s = series.get(entity)
            if s is None or not s.values:
                continue
            keep = (s.times % DAY_MS == 0) if frequency == "1d" else np.ones(s.times.size, bool)
            present = np.zeros(s.times.size, bool)
            for m in metrics:
                if m in s.values:
                    present |= ~np.isnan(s.values[m])
            keep &= present
            idx.append(np.full(int(keep.sum()), e, np.int64))
            times.append(s.times[keep])
            for m in metrics:
                cols[m].append(s.values[m][keep] if m in s.values else np.full(int(keep.sum()), np.nan))
        self.entity = np.concatenate(idx) if idx else np.zeros(0, np.int64)
        self.time = np.concatenate(times) if times else np.zeros(0, np.int64)
        self.values = {m: (np.concatenate(c) if c else np.zeros(0)) for m, c in cols.items()}
        order = np.lexsort((self.entity, self.time)) if sort_time else np.lexsort((self.time, self.entity))
        self.entity, self.time = self.entity[order], self.time[order]
        self.values = {m: v[order] for m, v in self.values.items()}
        self.sort_time = sort_time

    def __len__(self) -> int:
        return int(self.entity.size)

    def keys(self) -> np.ndarray:
        """A sortable key per row matching the order (entity index and hour packed in one integer)."""
        hours = self.time // HOUR_MS
        return hours * 100_000 + self.entity if self.sort_time else self.entity * 10_000_000 + hours

    def key_of(self, entity: str, time: int) -> int:
        e = int(np.searchsorted(np.array(self.entities, dtype=object), entity))
        return (time // HOUR_MS) * 100_000 + e if self.sort_time else e * 10_000_000 + time // HOUR_MS

    def take(self, rows: np.ndarray) -> Table:
        out = object.__new__(Table)
        out.__dict__.update(self.__dict__)
        out.entity, out.time = self.entity[rows], self.time[rows]
        out.values = {m: v[rows] for m, v in self.values.items()}
        return out

    def limit_per_entity(self, n: int) -> Table:
        """The latest n rows of each entity (order kept)."""
        keep = np.zeros(len(self), bool)
        for e in np.unique(self.entity):
            mine = np.nonzero(self.entity == e)[0]
            keep[mine[np.argsort(self.time[mine])][-n:]] = True
        return self.take(np.nonzero(keep)[0])

    def records(self, entity_key: str, null_as_zero: bool) -> Iterator[dict[str, Any]]:
        formatted = {m: shape.numbers(v) for m, v in self.values.items()}
        for i in range(len(self)):
            entity = self.entities[self.entity[i]]
            row: dict[str, Any] = {entity_key: entity, "time": shape.time_out(self.time[i])}
            for name, m in zip(self.names, self.metrics, strict=True):
                if entity in self.supports[m]:
                    value = formatted[m][i]
                    row[name] = "0" if value is None and null_as_zero else value
            yield row

    def chunks(self, entity_key: str, null_as_zero: bool, end: str, chunk: int = 50_000) -> Iterator[bytes]:
        """The rows as JSON objects, each followed by `end`, built column-wise with Arrow `chunk` rows at a time
        and handed out as the bytes of Arrow's own buffer. Same content and key order as `records`."""
        quoted = pa.array([orjson.dumps(e).decode() for e in self.entities])
        prefix = pa.scalar("{" + orjson.dumps(entity_key).decode() + ":")
        for lo in range(0, len(self), chunk):
            sl = slice(lo, lo + chunk)
            idx = pa.array(self.entity[sl])
            parts = [prefix, quoted.take(idx), pa.scalar(',"time":"'), shape.times(self.time[sl]), pa.scalar('"')]
            for name, m in zip(self.names, self.metrics, strict=True):
                values = shape.number_array(self.values[m][sl])
                written = pc.binary_join_element_wise(pa.scalar('"'), values, pa.scalar('"'), "")
                written = written.fill_null('"0"' if null_as_zero else "null")
                piece = pc.binary_join_element_wise(pa.scalar("," + orjson.dumps(name).decode() + ":"), written, "")
                holds = pa.array(np.isin(self.entity[sl], [i for i, e in enumerate(self.entities)
                                                           if e in self.supports[m]]))  # fmt: skip
                parts.append(pc.if_else(holds, piece, pa.scalar("")))
            parts.append(pa.scalar("}" + end))
            joined = pc.binary_join_element_wise(*parts, "")
            yield _buffer_bytes(joined)


def _respond(request: Request, table: Table, entity_key: str, limit_param: str, deprecated: bool) -> Response:
    q = request.query_params
    fmt = shape.parse_choice(q.get("format"), "format", ("json", "csv", "json_stream"), "json")
    null_as_zero = shape.parse_bool(q.get("null_as_zero"), "null_as_zero", False)
    pretty = shape.parse_bool(q.get("pretty"), "pretty", False)
    limit = shape.parse_int(q.get(limit_param), limit_param, None, 1, 1_000_000)
    if limit is not None:
        table = table.limit_per_entity(limit)
    headers = {"Deprecation": "true"} if deprecated else {}
    if fmt == "json_stream":  # every row, streamed, no paging
        return StreamingResponse(table.chunks(entity_key, null_as_zero, "\n"), media_type="application/x-ndjson",
                                 headers=headers)  # fmt: skip
    page_size = shape.parse_int(q.get("page_size"), "page_size", 100, 1, shape.MAX_PAGE_SIZE) or 100
    paging_from = shape.parse_choice(q.get("paging_from"), "paging_from", ("start", "end"), "end")
    tokens: shape.PageTokens = request.app.state.cm_tokens
    query = _query_key(request)
    keys = table.keys()
    lo, hi = 0, len(table)
    if q.get("next_page_token"):
        entity, time = tokens.decode(q["next_page_token"], query)
        at = table.key_of(entity, time)
        if paging_from == "start":
            lo = int(np.searchsorted(keys, at, side="right"))
        else:
            hi = int(np.searchsorted(keys, at, side="left"))
    if paging_from == "start":
        page, more = np.arange(lo, min(hi, lo + page_size)), lo + page_size < hi
        edge = page[-1] if more else None
    else:
        page, more = np.arange(max(lo, hi - page_size), hi), hi - page_size > lo
        edge = page[0] if more else None
    shown = table.take(page)
    token = url = None
    if edge is not None:
        token = tokens.encode((table.entities[table.entity[edge]], int(table.time[edge])), query)
        # never the caller's api_key: this page may be cached and served to another key (the client adds its own)
        params = [(k, v) for k, v in q.multi_items() if k not in ("next_page_token", "api_key")]
        url = f"{link_base(request)}{request.url.path}?{urlencode([*params, ('next_page_token', token)])}"
    if fmt == "csv":
        rows = list(shown.records(entity_key, null_as_zero))
        out = io.StringIO()
        columns = [entity_key, "time", *table.names]
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        if url:
            headers["x-next-page-url"] = url
        return Response(out.getvalue(), media_type="text/csv", headers=headers)
    data = b"".join(shown.chunks(entity_key, null_as_zero, ","))[:-1]
    more_keys = b""
    if token:
        more_keys = b',"next_page_token":' + orjson.dumps(token) + b',"next_page_url":' + orjson.dumps(url)
    content = b'{"data":[' + data + b"]" + more_keys + b"}"
    if pretty:
        content = orjson.dumps(orjson.loads(content), option=orjson.OPT_INDENT_2)
    return Response(content, media_type="application/json", headers=headers)


async def _timeseries(request: Request, kind: str, parameter: str, entity_key: str, limit_param: str,
                      sorts: tuple[str, ...]) -> Response:  # fmt: skip
    def build() -> Response:
        svc, q = funding(request), request.query_params
        universe = svc.universe()
        names, metrics, deprecated = _metrics(request)
        what = "Exchange-asset pair" if kind == "exchange_asset" else "Value"
        entities = _entities(request, parameter, universe.members(kind), what)
        frequency = shape.parse_choice(q.get("frequency"), "frequency", ("1h", "1d"), "1d")
        sort = shape.parse_choice(q.get("sort"), "sort", sorts, sorts[0])
        supports = {m: {e for e in entities if supported(universe, kind, e, m)} for m in metrics}
        if not any(supports.values()):
            raise CMBadParameter("metrics", f"None of the requested metrics is supported for the requested "
                                 f"{parameter}.")  # fmt: skip
        start, end = _window(request)
        series = svc.series(kind, entities, sorted(set(metrics)), start, end)
        table = Table(entities, names, metrics, series, supports, frequency, sort_time=sort == "time")
        return _respond(request, table, entity_key, limit_param, deprecated)

    return await _cached(request, build)


async def _cached(request: Request, build: Any) -> Response:
    """JSON pages come from the response cache (until the next state update); other formats are built."""
    q = request.query_params
    if q.get("format", "json") != "json":
        return await run_in_threadpool(build)
    key = (request.url.path, link_base(request), tuple(sorted((k, v) for k, v in q.multi_items() if k != "api_key")))
    latest = request.app.state.service.latest()
    cache = request.app.state.cache
    body = await run_in_threadpool(cache.get_or_build, latest.height if latest else None, key, lambda: build().body)
    deprecated = any(m.strip() in ALIASES for m in (q.get("metrics") or "").split(","))
    return Response(body, media_type="application/json", headers={"Deprecation": "true"} if deprecated else {})


@router.get("/timeseries/asset-metrics", response_class=Response, responses=RESPONSES,
            openapi_extra=documented("assets", "metrics", "frequency", "sort", "limit_per_asset", "null_as_zero",
                                     *_WINDOW, required=("assets", "metrics")))  # fmt: skip
async def asset_metrics(request: Request) -> Response:
    """Funding-rate metrics per asset (every dex's markets of the base coin), at 1h or 1d."""
    return await _timeseries(request, "asset", "assets", "asset", "limit_per_asset", ("asset", "time"))


@router.get("/timeseries/exchange-asset-metrics", response_class=Response, responses=RESPONSES,
            openapi_extra=documented("exchange_assets", "metrics", "frequency", "sort", "limit_per_exchange_asset",
                                     *_WINDOW, required=("exchange_assets", "metrics")))  # fmt: skip
async def exchange_asset_metrics(request: Request) -> Response:
    """Funding-rate metrics per exchange-asset (one dex's market of the base coin), at 1h or 1d."""
    return await _timeseries(request, "exchange_asset", "exchange_assets", "exchange_asset",
                             "limit_per_exchange_asset", ("exchange_asset", "time"))  # fmt: skip


@router.get(
    "/timeseries/market-funding-rates",
    response_class=Response,
    responses=RESPONSES,
    openapi_extra=documented("markets", "limit_per_market", *_WINDOW, required=("markets",)),
)
async def market_funding_rates(request: Request) -> Response:
    """The raw hourly funding rate of each market, as Hyperliquid settles it (period and interval 1 hour)."""

    def build() -> Response:
        svc = funding(request)
        universe = svc.universe()
        markets = _entities(request, "markets", universe.markets, "Market")
        start, end = _window(request)
        rates = svc.market_rates(markets, start, end)
        series = {m: Series(t, {"rate": r, "database_time": d.astype(np.float64)}) for m, (t, r, d) in rates.items()}
        supports = {"rate": set(markets), "database_time": set(markets)}
        table = Table(markets, ["rate", "database_time"], ["rate", "database_time"], series, supports, "1h",
                      sort_time=False)  # fmt: skip
        return _respond(request, _MarketTable.wrap(table), "market", "limit_per_market", False)

    return await run_in_threadpool(build)


class _MarketTable(Table):
    """Market funding rows: rate as a string, fixed period and interval, database_time as a time."""

    @staticmethod
    def wrap(table: Table) -> Table:
        out = object.__new__(_MarketTable)
        out.__dict__.update(table.__dict__)
        return out

    def take(self, rows: np.ndarray) -> Table:
        return _MarketTable.wrap(Table.take(self, rows))

    def limit_per_entity(self, n: int) -> Table:
        return _MarketTable.wrap(Table.limit_per_entity(self, n))

    def chunks(self, entity_key: str, null_as_zero: bool, end: str, chunk: int = 50_000) -> Iterator[bytes]:
        tail = end.encode()
        rows = [orjson.dumps(r) + tail for r in self.records(entity_key, null_as_zero)]
        for lo in range(0, len(rows), chunk):
            yield b"".join(rows[lo : lo + chunk])

    def records(self, entity_key: str, null_as_zero: bool) -> Iterator[dict[str, Any]]:
        rates = shape.numbers(self.values["rate"])
        stored = self.values["database_time"].tolist()
        for i in range(len(self)):
            yield {
                "market": self.entities[self.entity[i]],
                "time": shape.time_out(self.time[i]),
                "rate": rates[i],
                "period": "01:00:00",
                "interval": "01:00:00",
                "database_time": shape.time_out(int(stored[i])),
            }


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
        out.append({"frequency": "1d", "min_time": shape.time_out(day_first),
                    "max_time": shape.time_out(last // DAY_MS * DAY_MS)})  # fmt: skip
    return out


def _catalog(request: Request, kind: str, parameter: str, entity_key: str) -> Response:
    svc = funding(request)
    universe = svc.universe()
    members = universe.members(kind)
    wanted = _entities(request, parameter, members) if request.query_params.get(parameter) else sorted(members)
    asked = request.query_params.get("metrics")
    metrics = [ALIASES.get(m, m) for m in shape.parse_list(asked, "metrics")] if asked else list(METRICS)
    coverage = svc.coverage()
    rows = []
    for entity in wanted:
        spans = [coverage[c] for c in members[entity] if c in coverage]
        if not spans:
            continue
        first, last = min(s[0] for s in spans), max(s[1] for s in spans)
        listed = [{"metric": m, "frequencies": _frequencies(first, last)} for m in metrics
                  if m in METRICS and supported(universe, kind, entity, m)]  # fmt: skip
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
        wanted = (_entities(request, "markets", universe.markets, "Market") if request.query_params.get("markets")
                  else sorted(universe.markets))  # fmt: skip
        coverage = svc.coverage()
        end = FUNDING_INTERVAL_MS  # rates are stamped at the end of their funding interval
        rows = [{"market": m, "min_time": shape.time_out(coverage[universe.markets[m]][0] + end),
                 "max_time": shape.time_out(coverage[universe.markets[m]][1] + end)}
                for m in wanted if universe.markets[m] in coverage]  # fmt: skip
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
    rows = [{"metric": m, "full_name": REFERENCE[m][0], "description": REFERENCE[m][1], "product": "Market Data",
             "category": "Market", "subcategory": "Futures", "unit": "Dimensionless", "data_type": "decimal",
             "type": "Percentage", "display_name": REFERENCE[m][0],
             "docs_url": "docs/api.md#funding-rates-coin-metrics-api-v4"}
            for m in metrics if m in METRICS]  # fmt: skip
    return _plain(request, rows)
