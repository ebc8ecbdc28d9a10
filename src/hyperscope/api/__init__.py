"""The HTTP API: HyperTracker-compatible routes under /api/external, plus /health and /metrics."""

from hyperscope.api.app import ApiConfig, create_app

__all__ = ["ApiConfig", "create_app"]
