"""The Info API client (`POST /info`), for a node's local server and the public API alike.

It keeps to a weight budget on its own side (sources.md section 2.1: 1200 weight per minute per IP;
`clearinghouseState` and the other light requests weigh 2, `userRole` 60, everything else 20), waiting for
budget rather than being refused. A 429, a 5xx or a broken connection is retried with backoff (1 s doubling,
4 times) and then reported as `SourceUnavailable`; any other 4xx is `InfoRejected` (the caller skips that one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from hyperscope.errors import SourceUnavailable
from hyperscope.sources.hyperliquid.contexts import (
    perp_dex_names,
)

if TYPE_CHECKING:
    pass


LIGHT = {"l2Book", "allMids", "clearinghouseState", "orderStatus", "spotClearinghouseState", "exchangeStatus"}


PUBLIC_API = "https://api.hyperliquid.xyz/info"


def weight(request: dict[str, Any]) -> int:
    kind = request.get("type")
    return 2 if kind in LIGHT else 60 if kind == "userRole" else 20


class WeightBudget:
    """A token bucket of `per_minute` weight, refilled continuously; `take` waits until there is enough."""

    def __init__(
        self, per_minute: int, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.per_minute = per_minute
        self.clock, self.sleep = clock, sleep
        self.tokens = float(per_minute)
        self.at = clock()
        self.waited = 0.0

    def take(self, amount: int) -> None:
        amount = min(amount, self.per_minute)
        while True:
            now = self.clock()
            self.tokens = min(self.per_minute, self.tokens + (now - self.at) * self.per_minute / 60.0)
            self.at = now
            if self.tokens >= amount:
                self.tokens -= amount
                return
            wait = (amount - self.tokens) * 60.0 / self.per_minute
            self.waited += wait
            self.sleep(wait)


class InfoRejected(Exception):
    """The server refused one request (a 4xx other than 429): skip what it was for."""


class InfoClient:
    def __init__(
        self,
        url: str,
        weight_per_minute: int = 1200,
        *,
        timeout: float = 10.0,
        retries: int = 4,
        budget: WeightBudget | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.budget = budget or WeightBudget(weight_per_minute)
        self.retries = retries
        self.sleep = sleep
        self.http = httpx.Client(timeout=timeout, headers={"Content-Type": "application/json"})
        self.requests = 0
        self.weight_used = 0

    def close(self) -> None:
        self.http.close()

    def post(self, request: dict[str, Any]) -> Any:
        w = weight(request)
        attempt = 0
        while True:
            self.budget.take(w)
            self.requests += 1
            self.weight_used += w
            try:
                response = self.http.post(self.url, content=orjson.dumps(request))
            except httpx.HTTPError as e:
                problem = f"{type(e).__name__}: {e}"
            else:
                if response.status_code == 200:
                    try:
                        return orjson.loads(response.content)
                    except orjson.JSONDecodeError as e:
                        raise SourceUnavailable(f"info server answered {request['type']} with non-JSON") from e
                if response.status_code != 429 and response.status_code < 500:
                    raise InfoRejected(f"{request['type']}: HTTP {response.status_code} {response.text[:120]}")
                problem = f"HTTP {response.status_code}"
            attempt += 1
            if attempt > self.retries:
                raise SourceUnavailable(f"info server {self.url}: {problem} (after {self.retries} retries)")
            self.sleep(min(60.0, 2.0 ** (attempt - 1)))


def fetch_market(client: InfoClient) -> dict[str, Any]:
    """`perpDexs`, `metaAndAssetCtxs` per dex and `spotMetaAndAssetCtxs`, as one recording (contexts.py)."""
    dexes = client.post({"type": "perpDexs"})
    per_dex = [[dex, client.post({"type": "metaAndAssetCtxs", "dex": dex})] for dex in perp_dex_names(dexes)]
    spot = client.post({"type": "spotMetaAndAssetCtxs"})
    return {
        "origin": f"Info API {client.url}",
        "perpDexs": dexes,
        "metaAndAssetCtxs": per_dex,
        "spotMetaAndAssetCtxs": spot,
    }
