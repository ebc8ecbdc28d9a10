"""What the one ingest process records of itself in its store, so that `serve` processes reading the same
store can say honestly what ingest is doing (service/health.py). Pure data: the pipeline writes it, the
service reads it."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from typing import Any

from hyperscope.domain.timefmt import now_ms

WRITER_KEY = "writer"  # the meta row the writer keeps its record in
HEARTBEAT_SECONDS = 5.0
GONE_AFTER_SECONDS = 30.0  # a writer whose heartbeat is older than this is not running


@dataclass(frozen=True)
class WriterRecord:
    """What the one ingest process records of itself in the store, for `serve` processes to read."""

    state: str  # idle, running, retrying, failed or stopped
    reason: str | None
    retries: int
    rejected: int
    stale_after: float | None  # the lag its pace allows; None: history (a replay) or no live ingest
    heartbeat: int  # epoch ms of the last record; refreshed every HEARTBEAT_SECONDS while it runs
    beats: bool  # whether it refreshes the heartbeat (PostgreSQL) or only records start and end (DuckDB)
    pid: int
    host: str

    @staticmethod
    def of(status: Any, stale_after: float | None, beats: bool) -> WriterRecord:
        return WriterRecord(
            status.state,
            status.reason,
            status.retries,
            status.rejected,
            stale_after,
            now_ms(),
            beats,
            os.getpid(),
            socket.gethostname(),
        )

    def encode(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def decode(text: str | None) -> WriterRecord | None:
        if not text:
            return None
        try:
            return WriterRecord(**json.loads(text))
        except (ValueError, TypeError):
            return None

    def gone(self, now: int | None = None) -> bool:
        """It said it was ingesting, but it has not recorded so for too long (as of `now`, epoch ms)."""
        if self.state not in ("idle", "running", "retrying"):
            return False
        return not self.beats or ((now or now_ms()) - self.heartbeat) / 1000 > GONE_AFTER_SECONDS
