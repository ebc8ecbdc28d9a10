"""Export files in a local folder, named by ids of our making only (no caller-chosen path ever reaches the
disk): random, or derived by the export layer from a secret (exports/builder.py), always of one strict form.

Bounded twice: by age (a file outlives the newest link to it by a minute, then goes) and by bytes (past
`max_bytes`, a new file is refused with a 503 until old ones age out).
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from hyperscope.errors import NotFound, RetryLater

_NAME = re.compile(r"^[0-9a-f]{32}\.(csv|json|parquet)$")


class Files(Protocol):
    """Where export files live: a local folder (this module) or an S3-compatible store (exports/s3.py).
    Files are named by ids the store makes up; callers never choose a path."""

    def put(self, data: bytes, suffix: str, file_id: str | None = None) -> str: ...
    def keep_alive(self, file_id: str) -> bool: ...
    def building(self, file_id: str) -> AbstractContextManager[None]:
        """Held while `file_id` is built: by every process sharing the store where it can (a local folder)."""
        ...

    def presigned(self, file_id: str, name: str, seconds: int) -> str | None:
        """A link the store itself signs (S3), or None: the API serves the file behind its own signed link."""
        ...

    def path(self, file_id: str) -> Path: ...
    def purge(self) -> int: ...


def valid_name(file_id: str) -> bool:
    return bool(_NAME.match(file_id))


class LocalFiles:
    def __init__(self, root: Path, max_bytes: int, keep_seconds: int = 180) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.keep = keep_seconds
        self.root.mkdir(parents=True, exist_ok=True)
        self.purge()

    def put(self, data: bytes, suffix: str, file_id: str | None = None) -> str:
        """Store bytes under `file_id` (a new random one when None); returns the id. Written to a temp name
        and renamed: never half a file, and a reader of the same id sees the old file or the new one."""
        used = self.purge()
        if used + len(data) > self.max_bytes:
            raise RetryLater("export storage is full; try again in a few minutes")
        file_id = file_id or f"{secrets.token_hex(16)}.{suffix}"
        if not _NAME.match(file_id):
            raise ValueError(f"not an export file id: {file_id!r}")
        tmp = self.root / f".{file_id}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            tmp.write_bytes(data)
            tmp.replace(self.root / file_id)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise RetryLater("the export could not be written; try again later", detail=str(e)) from e
        return file_id

    def keep_alive(self, file_id: str) -> bool:
        """Mark a file as just linked to again (so it outlives the new link); False if it is gone."""
        try:
            os.utime(self.path(file_id))
        except (NotFound, OSError):
            return False
        return True

    @contextmanager
    def building(self, file_id: str) -> Iterator[None]:
        """An exclusive lock on the file's build across every process using this folder (flock)."""
        if not _NAME.match(file_id):
            raise ValueError(f"not an export file id: {file_id!r}")
        with (self.root / f".{file_id}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def presigned(self, file_id: str, name: str, seconds: int) -> str | None:
        return None  # served by GET /downloads/{token}

    def path(self, file_id: str) -> Path:
        if not _NAME.match(file_id):
            raise NotFound("no such export file")
        path = self.root / file_id
        if not path.is_file():
            raise NotFound("export file is gone; request the export again")
        return path

    def purge(self) -> int:
        """Remove files (and leftover temp files) older than `keep_seconds`; returns the bytes still held."""
        cutoff = time.time() - self.keep
        used = 0
        for entry in os.scandir(self.root):
            if not entry.is_file(follow_symlinks=False):
                continue
            info = entry.stat(follow_symlinks=False)
            if info.st_mtime < cutoff:
                Path(entry.path).unlink(missing_ok=True)
            else:
                used += info.st_size
        return used
