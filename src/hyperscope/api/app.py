"""The FastAPI app factory."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from hyperscope import __version__
from hyperscope.api import errors
from hyperscope.api.auth import AuthMiddleware, RateLimiter
from hyperscope.api.observability import Metrics, RequestMiddleware
from hyperscope.api.responses import ResponseCache
from hyperscope.api.routes import coins, market, segments, system
from hyperscope.exports import LinkSigner, LocalFiles
from hyperscope.service import KeyManager, Service


def create_app(service: Service, keys: KeyManager, exports_dir: Path, metrics: Metrics | None = None) -> FastAPI:
    app = FastAPI(
        title="hyperscope",
        version=__version__,
        description="Hyperliquid positioning analytics; HyperTracker-compatible routes under /api/external.",
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.service = service
    app.state.keys = keys
    app.state.limiter = RateLimiter()
    app.state.cache = ResponseCache()
    app.state.metrics = metrics or Metrics()
    app.state.files = LocalFiles(exports_dir)
    app.state.links = LinkSigner(service.cursors.secret)
    errors.install(app)
    for router in (market.router, coins.router, segments.router, system.router):
        app.include_router(router)
    # outermost last: every request is measured, including the ones authentication turns away
    app.add_middleware(AuthMiddleware, keys=keys, limiter=app.state.limiter)
    app.add_middleware(RequestMiddleware, metrics=app.state.metrics)
    app.openapi_schema = None
    _document_security(app)
    return app


def _document_security(app: FastAPI) -> None:
    """Declare the bearer key in the OpenAPI document for every /api/external route."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key: hs_<id>_<secret>"}
            }
            for path, operations in schema["paths"].items():
                if path.startswith("/api/external"):
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
