"""API keys where every process can change them while servers run: a small SQLite file beside an embedded
DuckDB store, or a table of the PostgreSQL database.

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

from hyperscope.errors import ConfigError, RetryLater, StoreUnavailable

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL, scopes TEXT NOT NULL,
    rate_limit INTEGER NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER
)
"""
# what each key used in a one-minute window, summed over every process that serves it (rate limits)
USAGE = """
CREATE TABLE IF NOT EXISTS usage (
    kind TEXT NOT NULL, key_id TEXT NOT NULL, minute BIGINT NOT NULL, count BIGINT NOT NULL,
    PRIMARY KEY (kind, key_id, minute)
)
"""
COLUMNS = ("key_id", "name", "hash", "scopes", "rate_limit", "created_at", "revoked_at")


class _KeyReads:
    """What both key stores read alike (the statements take no parameters)."""

    def _errors(self) -> Any:
        raise NotImplementedError

    def rows(self) -> list[dict[str, Any]]:
        with self._errors() as con:
            rows = con.execute(f"SELECT {', '.join(COLUMNS)} FROM api_keys ORDER BY created_at, key_id").fetchall()
        return [dict(zip(COLUMNS, row, strict=True)) for row in rows]

    def count(self) -> int:
        """Keys ever created, revoked ones included."""
        with self._errors() as con:
            return int(con.execute("SELECT count(*) FROM api_keys").fetchone()[0])


class KeyStore(_KeyReads):
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
            self._con.execute(USAGE)
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

    def add_usage(self, kind: str, minute: int, counts: dict[str, int]) -> dict[str, int]:
        """Add this process's counts of `minute` and return every key's total of that minute (all processes)."""
        with self._errors() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany(
                    "INSERT INTO usage VALUES (?, ?, ?, ?) ON CONFLICT (kind, key_id, minute) "
                    "DO UPDATE SET count = count + excluded.count",
                    [(kind, key, minute, n) for key, n in counts.items()],
                )
                con.execute("DELETE FROM usage WHERE minute < ?", (minute - 1,))
                rows = con.execute("SELECT key_id, count FROM usage WHERE kind = ? AND minute = ?", (kind, minute))
                totals = {key: int(n) for key, n in rows.fetchall()}
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return totals

    def close(self) -> None:
        with self._lock:
            self._con.close()


class PostgresKeyStore(_KeyReads):
    """The api_keys table inside the PostgreSQL database itself, shared by every process and machine.

    `version` changes with every created or revoked key (the count and the sum of revocation times), so a
    server reading it once a second notices another process's change within a second. Usage counts live in
    an UNLOGGED table: shared across processes, fast, and not worth keeping through a server crash."""

    def __init__(self, url: str) -> None:
        import psycopg

        from hyperscope.dsn import redact, scrub

        self.path = redact(url)
        try:
            self._con = psycopg.connect(url, autocommit=True, connect_timeout=10)
            exists = self._con.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
            if not exists or not exists[0]:
                self._con.close()
                raise ConfigError(f"no hyperscope data in {self.path}; create it with `hyperscope ingest --store ...`")
            with self._con.transaction():
                self._con.execute("SELECT pg_advisory_xact_lock(7)")  # two processes creating it at once
                self._con.execute(SCHEMA.replace("INTEGER", "BIGINT"))
                self._con.execute(USAGE.replace("CREATE TABLE", "CREATE UNLOGGED TABLE"))
        except psycopg.Error as e:
            raise StoreUnavailable("cannot open the API keys in the PostgreSQL store",
                                   detail=f"{self.path}: {scrub(' '.join(str(e).split()), url)}") from e
        self._lock = threading.Lock()

    @contextmanager
    def _errors(self) -> Iterator[Any]:
        import psycopg

        with self._lock:
            try:
                yield self._con
            except psycopg.Error as e:
                raise RetryLater(f"the key store could not answer ({type(e).__name__}); try again") from e

    def version(self) -> int:
        with self._errors() as con:
            row = con.execute("SELECT count(*), coalesce(sum(revoked_at), 0) FROM api_keys").fetchone()
        return hash((int(row[0]), int(row[1])))

    def insert(self, rows: list[dict[str, Any]]) -> None:
        with self._errors() as con, con.transaction():
            con.cursor().executemany(
                f"INSERT INTO api_keys ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
                "ON CONFLICT (key_id) DO NOTHING",
                [tuple(row.get(c) for c in COLUMNS) for row in rows],
            )

    def revoke(self, key_id: str, when: int) -> bool:
        with self._errors() as con:
            cur = con.execute(
                "UPDATE api_keys SET revoked_at = %s WHERE key_id = %s AND revoked_at IS NULL", (when, key_id)
            )
            return bool(cur.rowcount > 0)

    def add_usage(self, kind: str, minute: int, counts: dict[str, int]) -> dict[str, int]:
        with self._errors() as con, con.transaction():
            if counts:
                con.execute(
                    "INSERT INTO usage SELECT %s, k, %s, n FROM unnest(%s::text[], %s::bigint[]) AS t(k, n) "
                    "ON CONFLICT (kind, key_id, minute) DO UPDATE SET count = usage.count + EXCLUDED.count",
                    (kind, minute, list(counts), list(counts.values())),
                )
            con.execute("DELETE FROM usage WHERE minute < %s", (minute - 1,))
            rows = con.execute("SELECT key_id, count FROM usage WHERE kind = %s AND minute = %s", (kind, minute))
            return {key: int(n) for key, n in rows.fetchall()}

    def close(self) -> None:
        with self._lock:
            self._con.close()


def open_key_store(target: Path | str) -> KeyStore | PostgresKeyStore:
    """The key store of a SQLite file, or of a PostgreSQL database named by its URL."""
    if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
        return PostgresKeyStore(target)
    return KeyStore(target)
