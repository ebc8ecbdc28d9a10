"""Export files in a local folder, named by random ids only (no caller-chosen path ever reaches the disk)."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

from hyperscope.errors import NotFound

_NAME = re.compile(r"^[0-9a-f]{32}\.(csv|json)$")


class LocalFiles:
    def __init__(self, root: Path, keep_seconds: int = 600) -> None:
        self.root = root
        self.keep = keep_seconds
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes, suffix: str) -> str:
        """Store bytes; returns the file id. Written to a temp name and renamed: never half a file."""
        self.purge()
        file_id = f"{secrets.token_hex(16)}.{suffix}"
        tmp = self.root / f".{file_id}.tmp"
        tmp.write_bytes(data)
        tmp.replace(self.root / file_id)
        return file_id

    def path(self, file_id: str) -> Path:
        if not _NAME.match(file_id):
            raise NotFound("no such export file")
        path = self.root / file_id
        if not path.is_file():
            raise NotFound("export file is gone; request the export again")
        return path

    def purge(self) -> None:
        """Remove files older than `keep_seconds` (their links expired long ago)."""
        cutoff = time.time() - self.keep
        for path in self.root.iterdir():
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
