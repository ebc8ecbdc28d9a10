"""The FastAPI app factory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI

from hyperscope import __version__, dashboard
from hyperscope.api import errors
from hyperscope.api.auth import AuthMiddleware, RateLimiter
from hyperscope.api.coinmetrics import routes as coinmetrics
from hyperscope.api.coinmetrics.shape import PageTokens
from hyperscope.api.fastpath import FastPath
from hyperscope.api.hypertracker import coins, exports, market, positions, segments, system
from hyperscope.api.observability import HeadAsGet, Metrics, RequestMiddleware
from hyperscope.api.responses import ResponseCache
from hyperscope.api.state import ApiState
from hyperscope.domain.time import DAY_MS
from hyperscope.errors import ConfigError
from hyperscope.exports import Exports, Files, LinkSigner, LocalFiles
from hyperscope.exports.links import LINK_TTL_SECONDS
from hyperscope.service import KeyManager, Service
from hyperscope.service.health import IngestState
from hyperscope.signing import Signer

if TYPE_CHECKING:
    from hyperscope.settings import Settings

MIB = 1024 * 1024


@dataclass(frozen=True)
class ApiConfig:
    """What the app needs beside the service and the keys, made from the Settings by `from_settings` (the
    defaults live in the Settings, nowhere else)."""

    exports_dir: Path
    stale_after_seconds: float | None  # None: never stale (a replay of history)
    stale_after_from_writer: bool  # the store's writer says how stale is too stale (serve, unset)
    cache_max_bytes: int
    exports_max_bytes: int
    exports_per_minute: int
    public_url: str | None  # absolute base of download links; None: see api/urls.py
    allowed_hosts: tuple[str, ...]  # Host header names links may start with when public_url is unset
    orders_retention_ms: int  # order snapshots older than this are refused
    files: str | None  # s3://bucket/prefix, else the local exports_dir
    s3_endpoint_url: str | None
    secret: bytes = field(repr=False)  # signs cursors, download links and /v4 page tokens (runtime.secret)

    @classmethod
    def from_settings(
        cls, s: Settings, *, secret: bytes, stale_after_seconds: float | None, stale_after_from_writer: bool = False
    ) -> ApiConfig:
        return cls(
            exports_dir=s.exports_dir,
            stale_after_seconds=stale_after_seconds,
            stale_after_from_writer=stale_after_from_writer,
            cache_max_bytes=s.cache_max_mib * MIB,
            exports_max_bytes=s.exports_max_mib * MIB,
            exports_per_minute=s.exports_per_minute,
            public_url=s.public_url,
            allowed_hosts=tuple(s.allowed_hosts),
            orders_retention_ms=int(s.retention_orders_days * DAY_MS),
            files=s.files,
            s3_endpoint_url=s.s3_endpoint_url,
            secret=secret,
        )


def open_files(config: ApiConfig, keep_seconds: int) -> Files:
    """Where export files go: the S3-compatible store `config.files` names, else the local folder."""
    if config.files is not None:
        from hyperscope.exports.s3 import S3Files

        return S3Files(
            config.files,
            endpoint_url=config.s3_endpoint_url,
            max_bytes=config.exports_max_bytes,
            keep_seconds=keep_seconds,
        )
    return LocalFiles(config.exports_dir, config.exports_max_bytes, keep_seconds=keep_seconds)


def create_app(
    service: Service,
    keys: KeyManager,
    config: ApiConfig,
    metrics: Metrics | None = None,
    ingest: IngestState | None = None,
) -> FastAPI:
    if len(config.secret) < 16:
        raise ConfigError("the API needs a signing secret of at least 16 bytes (ApiConfig.secret)")
    app = FastAPI(
        title="hyperscope",
        version=__version__,
        description="Hyperliquid positioning analytics; HyperTracker-compatible routes under /api/external.",
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    limiter = RateLimiter(keys.counters)
    metrics = metrics or Metrics()
    files = open_files(config, keep_seconds=LINK_TTL_SECONDS + 60)
    cache = ResponseCache(config.cache_max_bytes)
    fast = FastPath(cache)
    app.state.hyperscope = ApiState(
        service=service,
        keys=keys,
        config=config,
        ingest=ingest,
        limiter=limiter,
        cache=cache,
        metrics=metrics,
        links=LinkSigner(Signer(config.secret, "link", LINK_TTL_SECONDS)),
        exports=Exports(files, config.exports_per_minute, keys.counters, config.secret),
        funding=service.funding(),
        cm_tokens=PageTokens(service.cursors.signer.for_purpose("cm-page")),
        fast=fast,
    )
    errors.install(app)
    dashboard.install(app, service, keys, config.secret)
    for router in (
        market.metrics_router,
        market.positions_router,
        positions.router,
        coins.router,
        segments.segments_router,
        segments.positions_router,
        exports.exports_router,
        exports.positions_router,
        exports.orders_router,
        exports.leaderboards_router,
        coinmetrics.router,
        system.router,
    ):
        app.include_router(router)
    # outermost last: every request is measured, including the ones authentication turns away
    app.add_middleware(AuthMiddleware, keys=keys, limiter=limiter, fast=fast, latest_height=service.latest_height)
    app.add_middleware(RequestMiddleware, metrics=metrics)
    app.add_middleware(HeadAsGet)
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
                if path.startswith(("/api/external", "/v4")):
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
