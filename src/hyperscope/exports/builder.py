"""Export files built once per state update and reused, with a per-key bound on how many get built.

A request for an export whose file was already built for the same state update gets a new link to that
file; only building a new file counts against the key's `per_minute`. Building happens under one lock, so
two requests for the same file build it once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from hyperscope.exports.storage import Files
from hyperscope.service.keys import MinuteWindows, UsageStore


class Exports:
    REFUSAL = ("this API key may have {limit} export files built per minute; retry in {retry} s "
               "(a file already built for the current state update is free)")  # fmt: skip

    MAX_REMEMBERED = 4096  # (kind, subject) pairs whose newest file is remembered, least recent dropped first

    def __init__(self, files: Files, per_minute: int, usage: UsageStore | None = None) -> None:
        self.files = files
        self.per_minute = per_minute
        self._lock = threading.Lock()
        # (kind, subject) -> (height, file id), in order of use
        self._built: OrderedDict[tuple[str, str], tuple[int, str]] = OrderedDict()
        self._windows = MinuteWindows(usage, "exports")  # files built per key per minute, every process

    def get_or_build(
        self, kind: str, subject: str, height: int, key_id: str, build: Callable[[], bytes], suffix: str
    ) -> str:
        """The file id of export `kind` of `subject` (a coin, ...) at state update `height`, built if needed."""
        with self._lock:
            built = self._built.get((kind, subject))
            if built is not None and built[0] == height and self.files.keep_alive(built[1]):
                self._built.move_to_end((kind, subject))
                return built[1]
            self._windows.hit(key_id, self.per_minute, self.REFUSAL)
            file_id = self.files.put(build(), suffix)
            self._built[(kind, subject)] = (height, file_id)
            self._built.move_to_end((kind, subject))
            while len(self._built) > self.MAX_REMEMBERED:
                self._built.popitem(last=False)
            return file_id
