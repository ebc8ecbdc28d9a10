"""Export files built once per state update and reused, with a per-key bound on how many get built.

A request for an export whose file was already built for the same state update gets a new link to that
file; only building a new file counts against the key's `per_minute`. Building happens under one lock, so
two requests for the same file build it once.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from hyperscope.errors import RateLimited
from hyperscope.exports.storage import LocalFiles


class Exports:
    def __init__(self, files: LocalFiles, per_minute: int) -> None:
        self.files = files
        self.per_minute = per_minute
        self._lock = threading.Lock()
        self._built: dict[tuple[str, str], tuple[int, str]] = {}  # (kind, subject) -> (height, file id)
        self._counts: dict[str, tuple[int, int]] = {}  # key id -> (minute, files built in it)

    def get_or_build(
        self, kind: str, subject: str, height: int, key_id: str, build: Callable[[], bytes], suffix: str
    ) -> str:
        """The file id of export `kind` of `subject` (a coin, ...) at state update `height`, built if needed."""
        with self._lock:
            built = self._built.get((kind, subject))
            if built is not None and built[0] == height and self.files.keep_alive(built[1]):
                return built[1]
            self._count(key_id)
            file_id = self.files.put(build(), suffix)
            self._built[(kind, subject)] = (height, file_id)
            return file_id

    def _count(self, key_id: str) -> None:
        now = time.time()
        minute = int(now // 60)
        start, count = self._counts.get(key_id, (minute, 0))
        if start != minute:
            start, count = minute, 0
        if count >= self.per_minute:
            retry = max(1, math.ceil((minute + 1) * 60 - now))
            raise RateLimited(
                f"this API key may have {self.per_minute} export files built per minute; retry in {retry} s "
                "(a file already built for the current state update is free)",
                retry_after=retry,
            )
        self._counts = {k: v for k, v in self._counts.items() if v[0] == minute}
        self._counts[key_id] = (start, count + 1)
