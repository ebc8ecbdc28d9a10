"""The HTTP API: HyperTracker-compatible routes under /api/external, plus /health and /metrics."""

from hyperscope.api.app import create_app

__all__ = ["create_app"]
