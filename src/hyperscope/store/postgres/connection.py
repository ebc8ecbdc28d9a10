"""PostgreSQL connections: the reader pool, the writer session and its lock, transient errors retried,
psycopg exceptions translated to ours (here and nowhere else)."""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
import pyarrow as pa
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from hyperscope.dsn import scrub
from hyperscope.errors import ConfigError, StoreFailed, StoreUnavailable
from hyperscope.store.base import (
    LatestUpdate,
)
from hyperscope.store.sql import SqlReads

log = logging.getLogger("hyperscope.store")

T = TypeVar("T")
NOTIFY_CHANNEL = "hyperscope_updates"  # the writer announces each committed state update here
WRITER_LOCK = 0x6879_7065_7273  # the advisory lock id the one ingest process holds ("hypers")
PUBLISHED = "(SELECT max(height) FROM state_updates)"  # the newest committed state update (schema 9's views)
# the transient kinds of failure: the connection, the server's resources, a conflict
_TRANSIENT = (
    psycopg.OperationalError,
    pg_errors.DiskFull,
    pg_errors.OutOfMemory,
    pg_errors.InsufficientResources,
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
    pg_errors.LockNotAvailable,
    pg_errors.QueryCanceled,
    pg_errors.AdminShutdown,
)
_ARROW_TYPES = {
    20: pa.int64(),
    23: pa.int32(),
    21: pa.int16(),
    701: pa.float64(),
    700: pa.float32(),
    16: pa.bool_(),
    1043: pa.string(),
    25: pa.string(),
}


class PgConnections(SqlReads):
    """Connections to one database: a pool of readers, the writer's own session (holding the advisory writer
    lock) and a background vacuum of the tables every update rewrites. psycopg exceptions become ours here."""

    url: str
    path: str
    writer: bool
    _pool: queue.LifoQueue[psycopg.Connection[Any]]
    _pool_slots: threading.BoundedSemaphore
    _write_lock: threading.Lock
    _local: threading.local
    _partitions: dict[str, set[int]]
    fault_hook: Callable[[str], None] | None
    _writer: psycopg.Connection[Any] | None
    _latest: LatestUpdate | None
    _following: bool
    _encoder: ThreadPoolExecutor
    _vacuum: threading.Event
    _closing: threading.Event
    _vacuumer: threading.Thread | None
    _sweeping: threading.Lock  # held by whoever deletes older updates' rows (the vacuum, the write ahead)
    _ahead: ThreadPoolExecutor
    _ahead_con: psycopg.Connection[Any] | None
    _unpublished: bool
    _recent: pa.Table | None  # the published update's recent_wallet_rows (None: read them before the next write)
    _swept: int | None  # the published height whose older updates' rows the vacuum deleted last
    _types: dict[str, dict[str, str]]

    def _connect(self, *, autocommit: bool, name: str = "api") -> psycopg.Connection[Any]:
        try:
            label = f"hyperscope {name} pid={os.getpid()} host={socket.gethostname()}"
            con = psycopg.connect(self.url, autocommit=autocommit, connect_timeout=10, application_name=label)
            # no JIT compilation: it spends 30-40 ms compiling a statement whose estimate passes its threshold
            # (the changed wallets' join; a /positions page), more than our statements take to run
            con.execute("SET jit = off")
            if not autocommit:
                con.commit()
        except psycopg.Error as e:
            raise StoreUnavailable(
                "cannot connect to the PostgreSQL store", detail=f"{self.path}: {self._text(e)}"
            ) from e
        return con

    def _text(self, error: BaseException) -> str:
        """An error's text on one line, with no secret of the URL in it (for details and logs)."""
        text = error.log_text if isinstance(error, StoreUnavailable | StoreFailed) else str(error)
        return scrub(" ".join(text.split()), self.url)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """psycopg's exceptions as ours: what may work later is StoreUnavailable; anything else StoreFailed."""
        try:
            yield
        except _TRANSIENT as e:
            raise StoreUnavailable(
                f"the store could not answer ({type(e).__name__}); try again", detail=self._text(e)
            ) from e
        except psycopg.Error as e:
            raise StoreFailed(f"the store failed ({type(e).__name__})", detail=self._text(e)) from e

    @contextmanager
    def _reader(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled autocommit connection (each statement sees the newest committed state updates)."""
        if not self._pool_slots.acquire(timeout=30):
            raise StoreUnavailable("every store connection is busy; try again")
        con: psycopg.Connection[Any] | None = None
        try:
            try:
                con = self._pool.get_nowait()
            except queue.Empty:
                con = self._connect(autocommit=True)
            with self._errors():
                yield con
        except BaseException:
            if con is not None and (con.closed or con.broken or con.info.transaction_status != 0):
                con.close()
                con = None
            raise
        finally:
            if con is not None and not con.closed:
                self._pool.put(con)
            self._pool_slots.release()

    def _read(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`work` on a pooled connection. A pooled connection that turns out dead (the server restarted since
        it was last used) is never the answer: every idle one is dropped and `work` runs once more on a new
        connection, whose failure is the answer (reads change nothing, so running one twice is safe)."""
        for attempt in range(2):
            reused = attempt == 0 and not self._pool.empty()
            try:
                with self._reader() as con:
                    return work(con)
            except StoreUnavailable:
                if not reused:
                    raise
                self._drain_pool()
        raise AssertionError("unreachable")

    def _drain_pool(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    def _dicts(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        sql = sql.replace("?", "%s") if "%s" not in sql else sql
        return self._read(lambda con: list(con.cursor(row_factory=dict_row).execute(sql, params).fetchall()))  # type: ignore[arg-type]

    def _scalar(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> Any:
        sql = sql.replace("?", "%s") if "%s" not in sql else sql
        row = self._read(lambda con: con.execute(sql, params).fetchone())  # type: ignore[arg-type]
        return row[0] if row else None

    def _arrow(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> pa.Table:
        """A query's rows as an Arrow table typed from the result's column types."""
        sql = sql.replace("?", "%s") if "%s" not in sql else sql

        def work(con: psycopg.Connection[Any]) -> tuple[list[Any], list[str], list[Any]]:
            cur = con.execute(sql, params)  # type: ignore[arg-type]
            rows = cur.fetchall()
            assert cur.description is not None
            return rows, [d.name for d in cur.description], [_ARROW_TYPES.get(d.type_code) for d in cur.description]

        rows, names, types = self._read(work)
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
        return pa.table({n: pa.array(c, type=t) for n, c, t in zip(names, columns, types, strict=True)})

    def _take_writer_lock(self, con: psycopg.Connection[Any], wait_seconds: float = 3.0) -> None:
        """The one-writer lock on `con`, or ConfigError naming its holder. Waits a few seconds first: a writer
        that was just killed holds it until the server notices its connection is gone."""
        deadline = time.monotonic() + wait_seconds
        with self._errors():
            while True:
                taken = con.execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK,)).fetchone()
                if taken and taken[0]:
                    return
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.2)
            holder = con.execute(
                "SELECT a.application_name, a.client_addr::text FROM pg_locks l JOIN pg_stat_activity a "
                "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND "
                "((l.classid::bigint << 32) | l.objid::bigint) = %s",
                (WRITER_LOCK,),
            ).fetchone()
        who = f" ({holder[0]}, from {holder[1] or 'a local socket'})" if holder else ""
        raise ConfigError(f"another hyperscope ingest is writing to {self.path}{who}: one writer per database")

    def _live_writer(self) -> psycopg.Connection[Any]:
        """The writer's connection. Once it broke (the server restarted, the network cut it), a new one that
        holds the writer lock again, with the newest height and the partitions read anew; StoreUnavailable
        while the server cannot be reached, ConfigError if another ingest took the lock meanwhile."""
        if self._writer is None:
            raise ConfigError("this store was opened for reading; `hyperscope ingest` writes")
        if not (self._writer.closed or self._writer.broken):
            return self._writer
        self._writer.close()
        con = self._connect(autocommit=True, name="ingest")
        try:
            self._take_writer_lock(con, wait_seconds=10.0)  # the old session's lock ends with it
        except BaseException:
            con.close()
            raise
        self._writer = con
        self._reconnected()
        log.warning(
            "reconnected to the store and took the writer lock again (newest height %s)",
            self._latest.height if self._latest else None,
        )
        return con

    def _read_latest(self) -> LatestUpdate | None:
        rows = self._dicts("SELECT height, time, ingested_at FROM state_updates ORDER BY height DESC LIMIT 1")
        return LatestUpdate(**rows[0]) if rows else None

    def latest(self) -> LatestUpdate | None:
        """The newest committed state update. The writer knows it; a reader is told by the writer's NOTIFY,
        sent with each commit (so no reader learns of an update before it is visible), and asks the
        database itself whenever it is not listening."""
        if self.writer or self._following:
            return self._latest
        return self._read_latest()

    def _reconnected(self) -> None:
        """What the writer rereads after it reconnects (layers above add theirs)."""
        self._latest = self._read_latest()

    def _vacuum_loop(self) -> None:
        """After each state update, delete the open positions and recent profiles of the updates before it, then
        vacuum the tables it wrote them to (and the settled profiles) from a connection of its own, so their dead
        rows are reused by the next update instead of piling up between autovacuum's visits.
        Runs while the source makes the next update; never holds up a write (the next update's own sweep
        deletes what this one could not). The lifecycles lose a few percent of their rows per update:
        autovacuum's (at 5%, throttled) is enough there, and vacuuming their three indexes after every update
        cost 0.05-0.09 s."""
        con: psycopg.Connection[Any] | None = None
        while not self._closing.is_set():
            if not self._vacuum.wait(1.0):
                continue
            self._vacuum.clear()
            try:
                con = con or self._connect(autocommit=True, name="ingest-vacuum")
                with self._sweeping:
                    (published,) = con.execute("SELECT max(height) FROM state_updates").fetchone() or (None,)
                    con.execute("DELETE FROM open_state_rows WHERE height < %s", (published,))
                    con.execute("DELETE FROM recent_wallet_rows WHERE gen < %s", (published,))
                    self._swept = published
                con.execute("VACUUM (SKIP_LOCKED) open_state_rows, recent_wallet_rows, wallet_rows")
            except (psycopg.Error, ConfigError) as e:
                log.warning("vacuum after a state update failed (autovacuum will do it): %s", self._text(e))
                if con is not None:
                    con.close()
                con = None
        if con is not None:
            con.close()
