"""/v4 request parameters in Coin Metrics' terms: metrics (with their older aliases), entity ids and patterns,
the time window, and the query a page token is bound to."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from hyperscope.api.coinmetrics import shape
from hyperscope.api.coinmetrics.shape import CMBadParameter, unsupported
from hyperscope.api.state import api_state
from hyperscope.domain.timefmt import now_ms
from hyperscope.service.funding import (
    ALIASES,
    METRICS,
    FundingService,
)


def funding(request: Request) -> FundingService:
    return api_state(request).funding


def metrics_of(request: Request) -> tuple[list[str], list[str], bool]:
    """(requested names, current names, any deprecated alias used)."""
    asked = shape.parse_list(request.query_params.get("metrics"), "metrics")
    current = []
    for name in asked:
        real = ALIASES.get(name, name)
        if real not in METRICS:
            raise unsupported("metrics", name)
        current.append(real)
    return asked, current, any(name in ALIASES for name in asked)


def entities_of(request: Request, parameter: str, known: dict[str, Any], what: str = "Value") -> list[str]:
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


def window_of(request: Request) -> tuple[int, int]:
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


def query_key(request: Request) -> str:
    """What a page token is bound to: every parameter but the token, the key and the page size."""
    q = request.query_params
    kept = sorted((k, v) for k, v in q.multi_items() if k not in ("next_page_token", "api_key", "page_size"))
    return request.url.path + "?" + urlencode(kept)
