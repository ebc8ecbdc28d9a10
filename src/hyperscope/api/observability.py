"""Prometheus metrics and the ASGI middleware that records every request and adds rate-limit headers."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hyperscope_http_requests", "HTTP requests", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "hyperscope_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "hyperscope_ingest_seconds",
            "Seconds per ingested state update by stage",
            ["stage"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.ingested = Counter("hyperscope_state_updates_ingested", "State updates ingested", registry=self.registry)
        self.height = Gauge(
            "hyperscope_state_update_height", "Height of the newest state update", registry=self.registry
        )
        self.lag = Gauge(
            "hyperscope_state_update_lag_seconds",
            "Seconds since the newest state update's time",
            registry=self.registry,
        )
        self.cache_entries = Gauge(
            "hyperscope_response_cache_entries", "Responses held by the response cache", registry=self.registry
        )
        self.cache_bytes = Gauge(
            "hyperscope_response_cache_bytes", "Bytes held by the response cache", registry=self.registry
        )

    def observe_ingest(self, result: Any) -> None:
        if result.skipped:
            return
        self.ingested.inc()
        for stage, seconds in result.seconds.items():
            self.ingest_seconds.labels(stage).observe(seconds)
        self.height.set(result.height)

    def observe_latest(self, height: int, time_ms: int) -> None:
        self.height.set(height)
        self.lag.set(max(0.0, time.time() - time_ms / 1000))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestMiddleware:
    """Records every request's route, status and latency; adds X-RateLimit-* headers when a key was used."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # label lookups, resolved once

    def _record(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (self.metrics.requests.labels(route, method, str(status)), self.metrics.latency.labels(route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        state = scope.setdefault("state", {})

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                limits = state.get("ratelimit")
                if limits:
                    headers = list(message.get("headers", []))
                    headers += [
                        (b"x-ratelimit-limit", str(limits[0]).encode()),
                        (b"x-ratelimit-remaining", str(limits[1]).encode()),
                        (b"x-ratelimit-reset", str(limits[2]).encode()),
                    ]
                    message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            self._record(getattr(route, "path", "unmatched"), scope["method"], status, time.perf_counter() - started)


class HeadAsGet:
    """HEAD answers as GET would, without the body (RFC 9110): every GET route supports it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
