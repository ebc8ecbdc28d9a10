"""One exception handler renders every error as {"error": type, "message": text} with the right status."""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hyperscope.api.responses import JSONBytes
from hyperscope.errors import HyperscopeError, RateLimited

log = logging.getLogger("hyperscope.api")


def error_body(kind: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": kind, "message": message, **extra}


COINMETRICS = "/v4/"


def family_error_body(path: str, exc: HyperscopeError) -> dict[str, object]:
    """The error body of the API family that owns `path`: Coin Metrics' `{"error": {"type", "message"}}` under
    /v4, HyperTracker's `{"error", "message"}` elsewhere."""
    if path.startswith(COINMETRICS):
        from hyperscope.api.coinmetrics.shape import error_body as cm_error_body

        return cm_error_body(exc)
    from hyperscope.api.hypertracker.shape import hint

    extra = {"retry_after": exc.retry_after} if isinstance(exc, RateLimited) else {}
    return error_body(exc.type, hint(exc), **extra)


_LOGGED: dict[str, float] = {}
REPEAT_SECONDS = 60.0


def _log_once(status: int, text: str) -> None:
    """Log a server-side failure, each distinct text at most once a minute (an outage or a full export store
    must not write a line per request); 503s are warnings (they pass), 500s errors."""
    now = time.monotonic()
    if now - _LOGGED.get(text, -REPEAT_SECONDS) < REPEAT_SECONDS:
        return
    if len(_LOGGED) > 1000:
        _LOGGED.clear()
    _LOGGED[text] = now
    log.log(logging.WARNING if status == 503 else logging.ERROR, "%s", text)


def install(app: FastAPI) -> None:
    @app.exception_handler(HyperscopeError)
    async def ours(request: Request, exc: HyperscopeError) -> JSONBytes:
        if exc.status >= 500:
            _log_once(exc.status, f"{request.method} {request.url.path} failed: {exc.log_text}")
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return JSONBytes(family_error_body(request.url.path, exc), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> JSONBytes:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return JSONBytes(error_body("bad_parameter", f"{where}: {first.get('msg', 'invalid')}"), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http(request: Request, exc: StarletteHTTPException) -> JSONBytes:
        kinds = {404: "not_found", 405: "method_not_allowed"}
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "GET")
            if "GET" in allowed and "HEAD" not in allowed:  # HeadAsGet answers HEAD wherever GET is routed
                allowed += ", HEAD"
            exc.headers = {**(exc.headers or {}), "Allow": allowed}
            message = f"{request.method} is not allowed here; allowed: {allowed}"
        else:
            message = str(exc.detail)
        body = error_body(kinds.get(exc.status_code, "http_error"), message)
        if request.url.path.startswith(COINMETRICS):
            body = {"error": {"type": body["error"], "message": message}}
        return JSONBytes(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONBytes:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        error = HyperscopeError("unexpected server error; it has been logged")
        return JSONBytes(family_error_body(request.url.path, error), status_code=500)
