"""The FastAPI app factory."""

from __future__ import annotations

from fastapi import FastAPI

from hyperscope import __version__
from hyperscope.api import errors
from hyperscope.api.auth import RateLimiter
from hyperscope.api.observability import Metrics, RequestMiddleware
from hyperscope.api.responses import ResponseCache
from hyperscope.api.routes import coins, market, segments, system
from hyperscope.service import KeyManager, Service


def create_app(service: Service, keys: KeyManager, metrics: Metrics | None = None) -> FastAPI:
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
    errors.install(app)
    for router in (market.metrics_router, market.positions_router, coins.router, segments.segments_router,
                   segments.positions_router, system.router):  # fmt: skip
        app.include_router(router)
    app.add_middleware(RequestMiddleware, metrics=app.state.metrics)
    return app
