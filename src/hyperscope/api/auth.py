"""Bearer-key authentication, per-key scopes and per-key rate limits (fixed one-minute windows)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request

from hyperscope.errors import Forbidden, RateLimited
from hyperscope.service.keys import ApiKey, KeyManager


class RateLimiter:
    """Requests per key per minute. Runs on the event loop only, so it needs no lock."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}

    def hit(self, key: ApiKey) -> tuple[int, int, int]:
        """Count one request; returns (limit, remaining, seconds until reset) or raises RateLimited."""
        now = time.time()
        window = int(now // 60)
        start, count = self._windows.get(key.key_id, (window, 0))
        if start != window:
            start, count = window, 0
        reset = max(1, math.ceil((window + 1) * 60 - now))
        if count >= key.rate_limit:
            raise RateLimited(
                f"rate limit of {key.rate_limit} requests per minute exceeded; retry in {reset} s",
                retry_after=reset,
            )
        self._windows[key.key_id] = (start, count + 1)
        return key.rate_limit, key.rate_limit - count - 1, reset


def require(scope: str) -> Callable[[Request], Coroutine[Any, Any, ApiKey]]:
    """A dependency: the request's key must exist, be active, allow `scope` and be under its rate limit."""

    async def dependency(request: Request) -> ApiKey:
        keys: KeyManager = request.app.state.keys
        key = keys.authenticate(request.headers.get("authorization"))
        limiter: RateLimiter = request.app.state.limiter
        try:
            request.state.ratelimit = limiter.hit(key)
        except RateLimited as e:
            request.state.ratelimit = (key.rate_limit, 0, e.retry_after)
            raise
        if not key.allows(scope):
            raise Forbidden(f"this API key has no access to '{scope}' routes")
        return key

    return dependency
