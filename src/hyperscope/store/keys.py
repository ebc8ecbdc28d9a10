"""API keys in their own small SQLite file, so that key management works while a server runs.

The embedded DuckDB store admits one process at a time; this file admits many (SQLite in WAL mode with a
busy timeout). A running server notices another process's change through `PRAGMA data_version`, a counter
that moves whenever another connection commits, so `hyperscope keys revoke` takes effect within a second
without a restart. Only hashes are stored (see service/keys.py). sqlite3 exceptions become ours here.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hyperscope.errors import ConfigError, RetryLater

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL, scopes TEXT NOT NULL,
    rate_limit INTEGER NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER
)
"""
COLUMNS = ("key_id", "name", "hash", "scopes", "rate_limit", "created_at", "revoked_at")


class KeyStore:
    """The api_keys table of one SQLite file. Thread-safe; several processes may open the same file."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(self.path, timeout=10, check_same_thread=False, isolation_level=None)
            self._con.execute("PRAGMA busy_timeout = 10000")
            if self.path != ":memory:":
                self._con.execute("PRAGMA journal_mode = WAL")
            self._con.execute(SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise ConfigError(f"cannot open the key file {self.path}: {e}") from e
        self._lock = threading.Lock()

    @contextmanager
    def _errors(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._con
            except sqlite3.Error as e:
                raise RetryLater(f"the key file could not answer ({type(e).__name__}); try again") from e

    def version(self) -> int:
        """A number that changes whenever another connection has committed a change to the file."""
        with self._errors() as con:
            return int(con.execute("PRAGMA data_version").fetchone()[0])

    def rows(self) -> list[dict[str, Any]]:
        with self._errors() as con:
            rows = con.execute(f"SELECT {', '.join(COLUMNS)} FROM api_keys ORDER BY created_at, key_id").fetchall()
        return [dict(zip(COLUMNS, row, strict=True)) for row in rows]

    def count(self) -> int:
        """Keys ever created, revoked ones included."""
        with self._errors() as con:
            return int(con.execute("SELECT count(*) FROM api_keys").fetchone()[0])

    def insert(self, rows: list[dict[str, Any]]) -> None:
        with self._errors() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany(
                    f"INSERT OR IGNORE INTO api_keys ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                    [tuple(row.get(c) for c in COLUMNS) for row in rows],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def revoke(self, key_id: str, when: int) -> bool:
        with self._errors() as con:
            cur = con.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (when, key_id)
            )
            return cur.rowcount > 0

    def close(self) -> None:
        with self._lock:
            self._con.close()


def open_key_store(path: Path | str) -> KeyStore:
    return KeyStore(path)
