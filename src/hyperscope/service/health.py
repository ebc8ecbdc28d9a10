"""What /health reports: the newest state update, the lag behind the clock and what ingest is doing.

    status          HTTP   when
    ok              200    data present, lag within `stale_after`, ingest (if any) not failed
    empty           503    no state update stored yet
    stale           503    the newest state update is older than `stale_after` seconds
    ingest_failed   503    this process's ingest stopped for good; `ingest.reason` says why

No file paths: they stay in the logs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from hyperscope.domain.timefmt import iso_ms, now_ms
from hyperscope.store.base import LatestUpdate


class IngestState(Protocol):
    """The part of the pipeline's status that health reads."""

    state: str
    reason: str | None
    retries: int
    rejected: int
    describe_source: Callable[[], dict[str, Any]] | None


def health(
    latest: LatestUpdate | None, backend: str, stale_after: float | None, ingest: IngestState | None
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body)."""
    lag = round((now_ms() - latest.time) / 1000, 3) if latest else None
    if ingest is not None and ingest.state == "failed":
        status = "ingest_failed"
    elif latest is None:
        status = "empty"
    elif lag is not None and stale_after is not None and lag > stale_after:
        status = "stale"
    else:
        status = "ok"
    body = {
        "status": status,
        "height": latest.height if latest else None,
        "time": iso_ms(latest.time) if latest else None,
        "lagSeconds": lag,
        "staleAfterSeconds": stale_after,
        "ingest": None
        if ingest is None
        else {"state": ingest.state, "reason": ingest.reason, "retries": ingest.retries, "rejected": ingest.rejected},
        "store": {"backend": backend},
        "source": ingest.describe_source() if ingest is not None and ingest.describe_source is not None else None,
    }
    return (200 if status == "ok" else 503), body
