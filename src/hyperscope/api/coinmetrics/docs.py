"""The /v4 routes' OpenAPI documentation: parameters, error responses and the metrics' reference text."""

from __future__ import annotations

from typing import Any

from hyperscope.service.funding import (
    METRICS,
)

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        }
    },
    "required": ["error"],
}


_STATUSES = {
    400: "A parameter is malformed or not supported (named in the message).",
    401: "Missing (unauthorized) or unknown (wrong_credentials) API key.",
    403: "The key has no access to the funding scope.",
    429: "Rate limited; see x-ratelimit-reset.",
    503: "The store cannot answer right now; retry.",
}


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        }
    },
    **{
        code: {"description": text, "content": {"application/json": {"schema": _ERROR}}}
        for code, text in _STATUSES.items()
    },
}


_STRING = {"type": "string"}


_PARAMS = {
    "assets": ("Assets, comma-separated (btc,eth) or *.", _STRING),
    "exchange_assets": ("Exchange-assets, comma-separated (hyperliquid-btc,hyperliquid-xyz-gold) or *.", _STRING),
    "markets": ("Markets, comma-separated (hyperliquid-BTC-future) or *.", _STRING),
    "metrics": ("Metric ids, comma-separated (see /v4/reference-data/asset-metrics).", _STRING),
    "frequency": ("1h or 1d (default; the 1h value at 00:00 UTC).", {"type": "string", "enum": ["1h", "1d"]}),
    "start_time": (
        "Start: 2006-01-20T00:00:00Z, ...00.000Z, ...00.123456Z, ...00.123456789Z, 2006-01-20 or 20060120.",
        _STRING,
    ),
    "end_time": ("End, in the same forms; now when omitted.", _STRING),
    "start_inclusive": ("Include start_time (default true).", {"type": "string", "enum": ["true", "false"]}),
    "end_inclusive": ("Include end_time (default true).", {"type": "string", "enum": ["true", "false"]}),
    "timezone": ("Time zone of times given without one (tz database name; default UTC).", _STRING),
    "page_size": ("Rows per page, 1-10000 (default 100).", {"type": "integer", "minimum": 1, "maximum": 10000}),
    "paging_from": (
        "start or end (default: the first page is the latest rows).",
        {"type": "string", "enum": ["start", "end"]},
    ),
    "sort": ("Order of rows: by entity (default) or by time.", _STRING),
    "limit_per_asset": ("The latest N rows of each asset.", {"type": "integer", "minimum": 1}),
    "limit_per_exchange_asset": ("The latest N rows of each exchange-asset.", {"type": "integer", "minimum": 1}),
    "limit_per_market": ("The latest N rows of each market.", {"type": "integer", "minimum": 1}),
    "format": (
        "json (default), csv or json_stream (NDJSON, every row, no paging).",
        {"type": "string", "enum": ["json", "csv", "json_stream"]},
    ),
    "pretty": ("Indented JSON.", {"type": "string", "enum": ["true", "false"]}),
    "null_as_zero": ("Write 0 where a supported metric has no value.", {"type": "string", "enum": ["true", "false"]}),
    "next_page_token": ("The next_page_token of the previous page (keep every other parameter).", _STRING),
    "api_key": ("Your API key (or send Authorization: Bearer <key>).", _STRING),
}


def documented(*names: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "parameters": [
            {"name": n, "in": "query", "required": n in required, "description": _PARAMS[n][0], "schema": _PARAMS[n][1]}
            for n in names
        ]
    }


WINDOW = (
    "start_time",
    "end_time",
    "start_inclusive",
    "end_inclusive",
    "timezone",
    "page_size",
    "paging_from",
    "format",
    "pretty",
    "next_page_token",
    "api_key",
)


REFERENCE = {  # metric -> (full name, description); category Market, subcategory Futures, as Coin Metrics files them
    **{
        m: (
            f"Funding rate, aggregated, futures, {margin.upper() if margin != 'all' else 'all'}-margined, "
            f"{span.replace('h', ' hours').replace('d', ' days').replace('1y', '1 year')}",
            "The open-interest-weighted average funding rate of the asset's perpetual futures markets, as an "
            + ("8-hour rate." if span == "8h" else f"8-hour rate rescaled linearly to {span}."),
        )
        for m, (kind, margin, span) in METRICS.items()
        if kind == "aggregate"
    },
    **{
        m: (
            f"Funding rate, cumulative, futures, {margin}-margined, rolling {span}",
            f"The aggregated hourly funding rate compounded over the trailing {span} (missing hours skipped).",
        )
        for m, (kind, margin, span) in METRICS.items()
        if kind == "cumulative"
    },
}
