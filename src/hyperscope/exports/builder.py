"""Export files built once per state update and reused, with a per-key bound on how many get built.

A request for an export whose file was already built for the same state update gets a new link to that
file; only building a new file counts against the key's `per_minute`. Every process over the same store
names a file alike (an HMAC of kind, subject and height under the shared signing secret: unguessable, and
the same in each API worker), so workers find the files the others built, and a build is held under the
file store's lock, so two requests for the same file, in one process or several, build it once.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable

from hyperscope.exports.storage import Files
from hyperscope.service.keys import MinuteWindows, UsageStore


class Exports:
    REFUSAL = (
        "this API key may have {limit} export files built per minute; retry in {retry} s "
        "(a file already built for the current state update is free)"
    )

    def __init__(self, files: Files, per_minute: int, usage: UsageStore | None = None, secret: bytes = b"") -> None:
        self.files = files
        self.per_minute = per_minute
        self.secret = secret
        self._windows = MinuteWindows(usage, "exports")  # files built per key per minute, every process
        self._windows_lock = threading.Lock()  # builds of different files run at once

    def file_id(self, kind: str, subject: str, height: int, suffix: str) -> str:
        """The id every process gives export `kind` of `subject` at `height`."""
        mac = hmac.new(self.secret, f"export|{kind}|{subject}|{height}".encode(), hashlib.sha256).hexdigest()
        return f"{mac[:32]}.{suffix}"

    def get_or_build(
        self, kind: str, subject: str, height: int, key_id: str, build: Callable[[], bytes], suffix: str
    ) -> str:
        """The file id of export `kind` of `subject` (a coin, ...) at state update `height`, built if needed."""
        file_id = self.file_id(kind, subject, height, suffix)
        if self.files.keep_alive(file_id):
            return file_id
        with self.files.building(file_id):
            if self.files.keep_alive(file_id):  # another request or worker built it meanwhile
                return file_id
            with self._windows_lock:
                self._windows.hit(key_id, self.per_minute, self.REFUSAL)
            return self.files.put(build(), suffix, file_id)
