"""API keys where every process can change them while servers run: a small SQLite file beside an embedded
DuckDB store, or a table of the PostgreSQL database.

The embedded DuckDB store admits one process at a time; this file admits many (SQLite in WAL mode with a
busy timeout). A running server notices another process's change through `PRAGMA data_version`, a counter
that moves whenever another connection commits, so `hyperscope keys revoke` takes effect within a second
without a restart. Only hashes are stored (see service/keys.py). sqlite3 exceptions become ours here.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
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
log = logging.getLogger("hyperscope.keys")
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

    def take_usage(self, kind: str, key_id: str, minute: int, want: int, limit: int) -> tuple[int, int]:
        """Grant up to `want` of the `limit` a key may use in `minute`, over every process: (granted, the
        key's total after the grant). Atomic, so the totals never pass the limit; older minutes are dropped."""
        with self._errors() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                row = con.execute(
                    "SELECT count FROM usage WHERE kind = ? AND key_id = ? AND minute = ?", (kind, key_id, minute)
                ).fetchone()
                used = int(row[0]) if row else 0
                granted = max(0, min(want, limit - used))
                con.execute(
                    "INSERT INTO usage VALUES (?, ?, ?, ?) ON CONFLICT (kind, key_id, minute) "
                    "DO UPDATE SET count = count + excluded.count",
                    (kind, key_id, minute, granted),
                )
                if row is None:
                    con.execute("DELETE FROM usage WHERE minute < ?", (minute - 1,))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return granted, used + granted

    def close(self) -> None:
        with self._lock:
            self._con.close()


class PostgresKeyStore(_KeyReads):
    """The api_keys table inside the PostgreSQL database itself, shared by every process and machine.

    `version` changes with every created or revoked key (the count and the sum of revocation times), so a
    server reading it once a second notices another process's change within a second. Usage counts live in
    an UNLOGGED table: shared across processes, fast, and not worth keeping through a server crash.

    The connection survives the server restarting: a broken one is replaced at the next call (at most one
    attempt a second while the server is down; meanwhile every call is RetryLater, never an old answer)."""

    RECONNECT_SECONDS = 1.0

    def __init__(self, url: str) -> None:
        import psycopg

        from hyperscope.dsn import redact, scrub

        self.path = redact(url)
        self._url = url
        self._next_attempt = 0.0
        try:
            self._con: Any = psycopg.connect(url, autocommit=True, connect_timeout=5)
            exists = self._con.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
            if not exists or not exists[0]:
                self._con.close()
                raise ConfigError(f"no hyperscope data in {self.path}; create it with `hyperscope ingest --store ...`")
            with self._con.transaction():
                self._con.execute("SELECT pg_advisory_xact_lock(7)")  # two processes creating it at once
                self._con.execute(SCHEMA.replace("INTEGER", "BIGINT"))
                self._con.execute(USAGE.replace("CREATE TABLE", "CREATE UNLOGGED TABLE"))
        except psycopg.Error as e:
            raise StoreUnavailable(
                "cannot open the API keys in the PostgreSQL store",
                detail=f"{self.path}: {scrub(' '.join(str(e).split()), url)}",
            ) from e
        self._lock = threading.Lock()

    def _connection(self) -> Any:
        import psycopg

        if not (self._con.closed or self._con.broken):
            return self._con
        now = time.monotonic()
        if now < self._next_attempt:
            raise RetryLater("the key store cannot be reached; try again")
        self._next_attempt = now + self.RECONNECT_SECONDS
        self._con.close()
        try:
            self._con = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
        except psycopg.Error as e:
            raise RetryLater("the key store cannot be reached; try again") from e
        log.warning("reconnected to the key store")
        return self._con

    @contextmanager
    def _errors(self) -> Iterator[Any]:
        import psycopg

        with self._lock:
            try:
                yield self._connection()
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

    def take_usage(self, kind: str, key_id: str, minute: int, want: int, limit: int) -> tuple[int, int]:
        with self._errors() as con, con.transaction():
            con.execute("INSERT INTO usage VALUES (%s, %s, %s, 0) ON CONFLICT DO NOTHING", (kind, key_id, minute))
            row = con.execute(
                "SELECT count FROM usage WHERE kind = %s AND key_id = %s AND minute = %s FOR UPDATE",
                (kind, key_id, minute),
            ).fetchone()
            used = int(row[0]) if row else 0
            granted = max(0, min(want, limit - used))
            if granted:
                con.execute(
                    "UPDATE usage SET count = count + %s WHERE kind = %s AND key_id = %s AND minute = %s",
                    (granted, kind, key_id, minute),
                )
            if used == 0:
                con.execute("DELETE FROM usage WHERE minute < %s", (minute - 1,))
        return granted, used + granted

    def close(self) -> None:
        with self._lock:
            self._con.close()


def open_key_store(target: Path | str) -> KeyStore | PostgresKeyStore:
    """The key store of a SQLite file, or of a PostgreSQL database named by its URL."""
    if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
        return PostgresKeyStore(target)
    return KeyStore(target)
