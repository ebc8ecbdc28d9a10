"""What every route reaches through the app: one typed object instead of a dozen `app.state` names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

if TYPE_CHECKING:
    from hyperscope.api.app import ApiConfig
    from hyperscope.api.auth import RateLimiter
    from hyperscope.api.coinmetrics.shape import PageTokens
    from hyperscope.api.fastpath import FastPath
    from hyperscope.api.observability import Metrics
    from hyperscope.api.responses import ResponseCache
    from hyperscope.exports import Exports, LinkSigner
    from hyperscope.service import KeyManager, Service
    from hyperscope.service.funding import FundingService
    from hyperscope.service.health import IngestState


@dataclass(frozen=True)
class ApiState:
    service: Service
    keys: KeyManager
    config: ApiConfig
    ingest: IngestState | None  # the ingest of this process, when it runs one
    limiter: RateLimiter
    cache: ResponseCache
    metrics: Metrics
    links: LinkSigner
    exports: Exports
    funding: FundingService
    cm_tokens: PageTokens
    fast: FastPath  # cached GETs answered again before routing (api/fastpath.py)


def api_state(request: Request) -> ApiState:
    """The app's parts, for a route or middleware holding the request."""
    state: ApiState = request.app.state.hyperscope
    return state
