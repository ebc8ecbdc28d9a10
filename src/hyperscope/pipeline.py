"""A source feeding the ingestor, as backfill or live, supervised.

Every state update goes through `supervised_ingest`: what may pass (the store busy, a full disk, a source
unreachable: `RetryLater`) is retried with backoff, 1 s doubling to 60 s, up to `retries` times; a state
update that breaks the contract is rejected whole, logged and skipped; anything else, or retries run out,
stops ingest for good. `IngestStatus` records which of these is happening, for /health and for the
process's exit code: a process that can no longer ingest says so and never pretends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from hyperscope.domain.state import StateUpdate
from hyperscope.domain.writer import HEARTBEAT_SECONDS, WRITER_KEY, WriterRecord
from hyperscope.errors import HyperscopeError, InvalidStateUpdate, RetryLater
from hyperscope.ingest import Ingestor, IngestResult
from hyperscope.sources.base import Source
from hyperscope.store.base import Store

log = logging.getLogger("hyperscope.pipeline")

MAX_BACKOFF_SECONDS = 60.0


@dataclass
class IngestStatus:
    """What ingest is doing: `idle`, `running`, `retrying`, `failed` or `stopped` (read by /health)."""

    state: str = "idle"
    reason: str | None = None
    retries: int = 0
    rejected: int = 0
    last_height: int | None = None
    on_failure: list[Callable[[str], None]] = field(default_factory=list)
    describe_source: Callable[[], dict[str, object]] | None = None  # the source's own account, for /health

    def ok(self, result: IngestResult) -> None:
        self.state, self.reason, self.retries, self.last_height = "running", None, 0, result.height

    def retrying(self, reason: str, attempt: int) -> None:
        self.state, self.reason, self.retries = "retrying", reason, attempt

    def fail(self, reason: str) -> None:
        self.state, self.reason = "failed", reason
        for callback in self.on_failure:
            callback(reason)

    @property
    def failed(self) -> bool:
        return self.state == "failed"


class WriterHeartbeat:
    """Records what ingest is doing in the store (service/health.py's WriterRecord), so that `serve` processes
    over the same store report it honestly: when ingest starts and stops, and, where servers read while it
    writes (PostgreSQL), every few seconds in between. A record that cannot be written is tried again at the
    next beat; it never holds up ingest."""

    def __init__(self, store: Store, status: IngestStatus, stale_after: float | None) -> None:
        self.store, self.status, self.stale_after = store, status, stale_after
        self.beats = store.backend == "postgresql"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> None:
        try:
            self.store.set_meta(WRITER_KEY, WriterRecord.of(self.status, self.stale_after, self.beats).encode())
        except HyperscopeError as e:
            log.debug("could not record the ingest's state in the store: %s", e.log_text)

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self._record()

    def start(self) -> None:
        self._record()
        if self.beats:
            self._thread = threading.Thread(target=self._loop, name="writer-heartbeat", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """The last record: stopped (or failed, with its reason)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.status.state != "failed":
            self.status.state = "stopped"
        self._record()


class IngestFailed(Exception):
    """Ingest stopped for good; the reason is already in IngestStatus and in the log."""


def backoff(attempt: int) -> float:
    return min(MAX_BACKOFF_SECONDS, 2.0 ** (attempt - 1))


def supervised_ingest(
    ingestor: Ingestor,
    update: StateUpdate,
    status: IngestStatus,
    stop: threading.Event,
    retries: int,
    delay: Callable[[int], float] = backoff,
) -> IngestResult | None:
    """Ingest one update: its result, None when it was rejected or `stop` was set; IngestFailed when ingest
    cannot go on."""
    attempt = 0
    while True:
        try:
            result = ingestor.ingest(update)
        except InvalidStateUpdate as e:  # already logged with its reason; the next update may be fine
            status.rejected += 1
            status.reason = e.message
            return None
        except RetryLater as e:
            attempt += 1
            if _wait_to_retry("ingest failed", e, attempt, status, stop, retries, delay):
                return None
            continue
        except HyperscopeError as e:
            _fail(status, e.message, e)
        except (MemoryError, OSError) as e:
            _fail(status, f"{type(e).__name__}: {e}", e)
        except Exception as e:
            log.exception("unexpected error while ingesting")
            _fail(status, f"unexpected {type(e).__name__}: {e}", e)
        status.ok(result)
        return result


def produce(
    make: Callable[[], StateUpdate | None],
    status: IngestStatus,
    stop: threading.Event,
    retries: int,
    delay: Callable[[int], float] = backoff,
) -> StateUpdate | None:
    """Ask the source for an update: None when it rejected what it read (logged and counted, as a bad update
    is) or `stop` was set; a source that cannot be reached is retried like the store; IngestFailed when
    ingest cannot go on."""
    attempt = 0
    while not stop.is_set():
        try:
            return make()
        except InvalidStateUpdate as e:  # the source logged what and where
            status.rejected += 1
            status.reason = e.message
            return None
        except RetryLater as e:
            attempt += 1
            _wait_to_retry("source unavailable", e, attempt, status, stop, retries, delay)
        except HyperscopeError as e:
            _fail(status, e.message, e)
    return None


def _wait_to_retry(
    what: str,
    error: RetryLater,
    attempt: int,
    status: IngestStatus,
    stop: threading.Event,
    retries: int,
    delay: Callable[[int], float],
) -> bool:
    """Wait before retry `attempt` (IngestFailed once retries run out); True when `stop` was set meanwhile."""
    if attempt > retries:
        _fail(status, f"{error.message} (gave up after {retries} retries)", error)
    status.retrying(error.message, attempt)
    wait = delay(attempt)
    log.warning("%s (%s); retry %d of %d in %.0f s", what, error.log_text, attempt, retries, wait)
    return stop.wait(wait)


def _fail(status: IngestStatus, reason: str, error: BaseException) -> None:
    detail = error.log_text if isinstance(error, HyperscopeError) else reason
    log.error("ingest stopped: %s", detail)
    status.fail(reason)
    raise IngestFailed(reason) from error


def backfill(
    source: Source,
    ingestor: Ingestor,
    *,
    stop: threading.Event | None = None,
    status: IngestStatus | None = None,
    retries: int = 0,
    progress: Callable[[int, int, IngestResult], None] | None = None,
) -> int:
    """Ingest the source's backlog (everything already due) as fast as possible; returns how many updates.

    Checks `stop` between updates and checkpoints as it goes, so an interrupted backfill resumes.
    """
    stop = stop or threading.Event()
    status = status or IngestStatus()
    backlog = source.backlog()
    done = 0
    try:
        for i, step in enumerate(backlog):
            update = produce(step, status, stop, retries)
            if update is None:
                if stop.is_set():
                    break
                continue
            result = supervised_ingest(ingestor, update, status, stop, retries)
            if result is not None:  # None: rejected (logged, counted, never marked as stored) or stopping
                source.stored(update.height)
                ingestor.between_updates()
                done += 1
                if progress is not None:
                    progress(i + 1, backlog.total, result)
            if stop.is_set():
                break
    finally:
        source.save()
    return done


def live(
    source: Source,
    ingestor: Ingestor,
    stop: threading.Event,
    *,
    status: IngestStatus | None = None,
    retries: int = 0,
    max_updates: int | None = None,
) -> int:
    """Ingest each state update as the source makes it due, until `stop`.

    Returns the number of updates ingested; raises IngestFailed when ingest cannot go on.
    """
    status = status or IngestStatus()
    done = 0
    try:
        while not stop.is_set() and (max_updates is None or done < max_updates):
            update = produce(lambda: source.next_update(stop), status, stop, retries)
            if update is None:
                continue
            result = supervised_ingest(ingestor, update, status, stop, retries)
            if result is not None:
                source.stored(update.height)
                ingestor.between_updates()  # the idle time until the next update is due
                done += 1
                log.info(
                    "state update %s: %s positions in %.3fs", result.height, result.positions, result.total_seconds
                )
    finally:
        source.save()
    if status.state != "failed":
        status.state = "stopped"
    return done
