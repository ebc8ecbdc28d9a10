"""Bearer-key authentication and per-key rate limits (ASGI middleware), and per-route scopes.

Every request under /api/external needs a key: the middleware authenticates it and counts it, whatever
the path, so an unknown path is a 401 before it is a 404. Doing this in one middleware rather than a
FastAPI dependency per route halves the per-request overhead (measured: 11.5k vs 6k requests/s).

Which scope a route needs is declared where the route is declared, by the router's route class
(`APIRouter(route_class=scoped("metrics"))`), and checked after routing on the route that will answer:
never guessed from the URL's text.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import unquote_plus

import orjson
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from hyperscope.api.errors import COINMETRICS, family_error_body
from hyperscope.api.fastpath import FastPath, send_json
from hyperscope.errors import BadParameter, Forbidden, HyperscopeError, MissingKey, RateLimited, WrongKey
from hyperscope.service.keys import SCOPES, ApiKey, KeyManager, MinuteWindows, UsageStore

# Paths that need no key; everything else does (an unknown path is a 401 before it is a 404), so a new route is
# never public by accident.
PUBLIC = frozenset({"/", "/health", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect"})
PUBLIC_PREFIXES = ("/downloads/", "/dashboard")  # the dashboard signs in with its own session cookie


def is_public(path: str) -> bool:
    return path in PUBLIC or path.startswith(PUBLIC_PREFIXES)


MISSING = "missing Authorization header; send 'Authorization: Bearer <your API key>'"


def credentials(scope: Scope) -> str:
    """The key a request presents: its `Authorization: Bearer` header, or, under /v4 only, Coin Metrics'
    `api_key=` parameter (the official client sends it). HyperTracker routes take the header alone, as
    upstream documents, so keys stay out of URLs, proxies' logs and browser histories. MissingKey or WrongKey
    (a header of another scheme) when there is none to check."""
    header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
    if header:
        scheme, _, token = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise WrongKey("malformed Authorization header; expected 'Bearer <your API key>'")
        return token.strip()
    if scope["path"].startswith(COINMETRICS):
        for part in scope.get("query_string", b"").split(b"&"):
            name, _, value = part.partition(b"=")
            if name == b"api_key" and value:
                return unquote_plus(value.decode("latin-1"))
    raise MissingKey(MISSING)


def scoped(scope: str) -> type[APIRoute]:
    """A route class whose routes answer only keys allowed `scope` (403 otherwise)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    class ScopedRoute(APIRoute):
        required_scope = scope

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            # the query parameters the route documents are the ones it reads: any other is a typo or a
            # misunderstanding (`coins=BTC` must not quietly answer for every coin), so a 400 that names it;
            # so is an empty one (`format=`): the parsers below only ever see absent or non-empty values
            documented = sorted(
                p["name"] for p in (self.openapi_extra or {}).get("parameters", []) if p.get("in") == "query"
            )
            allowed = frozenset(documented)

            async def checked(request: Request) -> Response:
                key: ApiKey | None = request.scope.get("state", {}).get("api_key")
                if key is None:  # the middleware authenticates every /api/external request; never serve without
                    raise MissingKey(MISSING)
                if not key.allows(scope):
                    raise Forbidden(f"this API key has no access to '{scope}' routes")
                for name, value in request.query_params.multi_items():
                    if name not in allowed:
                        reads = ", ".join(documented) if documented else "no parameters"
                        raise BadParameter(name[:64], f"not a parameter of this route (it reads {reads})")
                    if not value.strip():  # present but empty: a 400, never the default in disguise
                        raise BadParameter(name, "is empty; leave it out for the default")
                return await handler(request)

            return checked

    ScopedRoute.__name__ = f"ScopedRoute[{scope}]"
    return ScopedRoute


class RateLimiter:
    """Requests per key per minute, across every process sharing `usage` (the key store). Used on the event
    loop only."""

    REFUSAL = "rate limit of {limit} requests per minute exceeded; retry in {retry} s"

    def __init__(self, usage: UsageStore | None = None) -> None:
        self._windows = MinuteWindows(usage, "requests")

    def hit(self, key: ApiKey) -> tuple[int, int, int]:
        """Count one request; returns (limit, remaining, seconds until reset) or raises RateLimited."""
        return self._windows.hit(key.key_id, key.rate_limit, self.REFUSAL)


class AuthMiddleware:
    """Rejects /api/external requests without an active key allowed on the route (401/403/429), and answers a
    cached GET it has seen answered before on the short path (api/fastpath.py)."""

    def __init__(
        self,
        app: ASGIApp,
        keys: KeyManager,
        limiter: RateLimiter,
        fast: FastPath | None = None,
        latest_height: Callable[[], int | None] | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        self.limiter = limiter
        self.fast = fast
        self.latest_height = latest_height

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        try:
            key = self.keys.authenticate(credentials(scope))
            try:
                state["ratelimit"] = self.limiter.hit(key)
            except RateLimited as e:
                state["ratelimit"] = (key.rate_limit, 0, e.retry_after)
                raise
        except HyperscopeError as e:
            await self._reject(e, send, scope["path"])
            return
        state["api_key"] = key
        if self.fast is not None and self.latest_height is not None and scope["method"] == "GET":
            body = self.fast.body(scope, key.allows, self.latest_height())
            if body is not None:
                await send_json(send, body)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _reject(error: HyperscopeError, send: Send, path: str = "") -> None:
        body = orjson.dumps(family_error_body(path, error))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if isinstance(error, RateLimited):
            headers.append((b"retry-after", str(error.retry_after).encode()))
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
