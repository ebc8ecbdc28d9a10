"""What /health reports: the newest state update, the lag behind the clock and what ingest is doing.

    status              HTTP   when
    ok                  200    data present, lag within `stale_after`, ingest (if any) not failed
    empty               503    no state update stored yet
    stale               503    the newest state update is older than `stale_after` seconds
    ingest_failed       503    ingest stopped for good; `ingest.reason` says why
    ingest_down         503    the writer of the store stopped recording that it is alive (killed, or its
                               machine is gone) while it said it was ingesting
    store_unavailable   503    the store cannot answer now (a database restart, an outage)
    keys_unavailable    503    the API keys cannot be read now (requests get 503 meanwhile)

A process that ingests reports its own ingest. A `serve` process reads what the writer records in the store
(`WriterRecord`): its state and reason, the staleness it expects for its pace, and a heartbeat every few
seconds (PostgreSQL, where writer and servers run at once), so it is honest about an ingest that stopped.

Never a file path, host, user or database name: /health needs no key. Those stay in the logs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from hyperscope.domain.timefmt import iso_ms, now_ms
from hyperscope.domain.writer import WriterRecord
from hyperscope.errors import HyperscopeError
from hyperscope.store.base import LatestUpdate


class IngestState(Protocol):
    """The part of the pipeline's status that health reads."""

    state: str
    reason: str | None
    retries: int
    rejected: int
    describe_source: Callable[[], dict[str, Any]] | None


def health(
    latest: LatestUpdate | None | HyperscopeError,
    backend: str,
    stale_after: float | None,
    ingest: IngestState | None,
    writer: WriterRecord | None = None,
    keys_unavailable: str | None = None,
    now: int | None = None,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) as of `now` (epoch ms; the clock by default). `latest` is the error the store
    raised when it could not answer; `ingest` this process's own ingest, `writer` (for a process that does
    not ingest) what the store's writer recorded."""
    now = now if now is not None else now_ms()
    problem = latest if isinstance(latest, HyperscopeError) else None
    latest = None if problem is not None else latest
    assert not isinstance(latest, HyperscopeError)
    lag = round((now - latest.time) / 1000, 3) if latest else None
    account: dict[str, Any] | None = None
    if ingest is not None:
        account = {
            "state": ingest.state,
            "reason": ingest.reason,
            "retries": ingest.retries,
            "rejected": ingest.rejected,
        }
    elif writer is not None:
        account = {
            "state": writer.state,
            "reason": writer.reason,
            "retries": writer.retries,
            "rejected": writer.rejected,
            "heartbeat_seconds_ago": round((now - writer.heartbeat) / 1000, 1),
            "process": "another",
        }
        if writer.stale_after is not None or writer.state != "stopped":
            stale_after = writer.stale_after if writer.stale_after is not None else stale_after
    if problem is not None:
        status = "store_unavailable"
    elif keys_unavailable is not None:
        status = "keys_unavailable"
    elif account is not None and account["state"] == "failed":
        status = "ingest_failed"
    elif ingest is None and writer is not None and writer.gone(now):
        status = "ingest_down"
        account = {
            **(account or {}),
            "reason": f"the ingest process (pid {writer.pid}) has not recorded that it "
            f"runs for {(now_ms() - writer.heartbeat) / 1000:,.0f} s: it stopped or cannot reach the store",
        }
    elif latest is None:
        status = "empty"
    elif lag is not None and stale_after is not None and lag > stale_after:
        status = "stale"
    else:
        status = "ok"
    body = {
        "status": status,
        "reason": problem.message if problem is not None else keys_unavailable,
        "height": latest.height if latest else None,
        "time": iso_ms(latest.time) if latest else None,
        "lag_seconds": lag,
        "stale_after_seconds": stale_after,
        "ingest": account,
        "store": {"backend": backend},
        "source": ingest.describe_source() if ingest is not None and ingest.describe_source is not None else None,
    }
    return (200 if status == "ok" else 503), body
