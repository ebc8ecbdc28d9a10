"""The PostgreSQL store: one database that one ingest process writes and any number of API processes read.

The schema is schema.sql (the subset both backends run) with PostgreSQL's own additions kept here: the tables
that grow with time are range-partitioned by day on their time column (retention drops whole partitions),
and B-tree indexes serve the read paths. One state update is one transaction written with binary COPY
(store/pgcopy.py); readers use MVCC snapshots, so they never wait for the writer and never see half an
update. A session advisory lock admits one writer per database. Nothing a reader needs lives in this
process: the newest height, metric row ids and key changes are read from the database.

psycopg exceptions are translated to ours here and nowhere else.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from importlib import resources
from typing import Any, TypeVar

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from hyperscope.domain.ids import wallet_keys
from hyperscope.dsn import redact, scrub
from hyperscope.errors import ConfigError, StoreFailed, StoreUnavailable
from hyperscope.store import pgcopy
from hyperscope.store.base import (
    DAY_MS,
    HISTORY_FIELDS,
    HISTORY_SORT,
    LIFECYCLE_COLUMNS,
    MISSING_MARKET,
    SCHEMA_VERSION,
    SERIES_TABLES,
    STATE_COLUMNS,
    HistoryQuery,
    LatestUpdate,
    OrderWrite,
    Retention,
    Series,
    WriteBatch,
    as_open_positions,
    order_rows,
    to_storage,
)
from hyperscope.store.sql import SqlReads

log = logging.getLogger("hyperscope.store")
T = TypeVar("T")
NOTIFY_CHANNEL = "hyperscope_updates"  # the writer announces each committed state update here
WRITER_LOCK = 0x6879_7065_7273  # the advisory lock id the one ingest process holds ("hypers")
# table -> the time column its daily partitions split on
PARTITIONED = {
    **dict.fromkeys(SERIES_TABLES, "created_at"),
    "markets": "time",
    "positions_closed": "close_time",
    "fills": "time",
    "wallet_marks": "time",
    "funding_hourly": "time",
    "order_ends": "last_time",
}
INDEXES = (
    "CREATE INDEX IF NOT EXISTS state_updates_time ON state_updates (time)",
    "CREATE INDEX IF NOT EXISTS state_updates_orders ON state_updates (height) WHERE has_orders",
    "CREATE INDEX IF NOT EXISTS markets_height ON markets (height, coin)",
    "CREATE UNIQUE INDEX IF NOT EXISTS lifecycles_key ON lifecycles (key)",
    "CREATE INDEX IF NOT EXISTS lifecycles_coin ON lifecycles (coin)",
    "CREATE INDEX IF NOT EXISTS lifecycles_wallet ON lifecycles (wallet)",
    # open positions are rewritten whole at every update: a B-tree would double the write; rows go in by key
    # order, so a BRIN index (a few pages) narrows key lookups, and joins hash the table
    "CREATE INDEX IF NOT EXISTS open_states_key ON open_states USING brin (key)",
    "CREATE INDEX IF NOT EXISTS positions_closed_key ON positions_closed (key)",
    "CREATE INDEX IF NOT EXISTS positions_closed_coin ON positions_closed (coin, close_time)",
    "CREATE INDEX IF NOT EXISTS positions_closed_wallet ON positions_closed (wallet)",

    "CREATE INDEX IF NOT EXISTS order_spans_span ON order_spans (span)",
    "CREATE INDEX IF NOT EXISTS order_spans_first ON order_spans (first_height)",
    "CREATE INDEX IF NOT EXISTS order_ends_span ON order_ends (span)",
    "CREATE INDEX IF NOT EXISTS funding_hourly_coin ON funding_hourly (coin, time)",
    # retention deletes by time inside the partition that holds the horizon: without these it scans it whole
    "CREATE INDEX IF NOT EXISTS fills_time ON fills (time)",
    "CREATE INDEX IF NOT EXISTS positions_closed_time ON positions_closed (close_time)",
    "CREATE INDEX IF NOT EXISTS wallet_marks_time ON wallet_marks (time)",
    "CREATE INDEX IF NOT EXISTS order_ends_time ON order_ends (last_time)",
    *(f"CREATE INDEX IF NOT EXISTS {t}_height ON {t} (height)" for t in SERIES_TABLES),
    *(f"CREATE INDEX IF NOT EXISTS {t}_time ON {t} (created_at, id)"
      for t in ("metrics_general", "metrics_perp_volume", "metrics_wallets_equity")),
    "CREATE INDEX IF NOT EXISTS metrics_coin_series ON metrics_coin (coin, created_at)",
    "CREATE INDEX IF NOT EXISTS metrics_coin_segment_series ON metrics_coin_segment "
    "(coin, segment_id, timeframe, created_at)",
    "CREATE INDEX IF NOT EXISTS metrics_coin_bucket_series ON metrics_coin_bucket (coin, size_bucket, created_at)",
    "CREATE INDEX IF NOT EXISTS metrics_segment_series ON metrics_segment (segment_id, timeframe, created_at)",
    # every state update rewrites the open positions: vacuum them often, not at 20% dead rows
    "ALTER TABLE open_states SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 50000)",
    "ALTER TABLE lifecycles SET (autovacuum_vacuum_scale_factor = 0.05)",
    # every state update rewrites the profiles that changed (a third of them and more): no index to keep up,
    # joins by address hash the table
    "ALTER TABLE wallets SET (autovacuum_vacuum_scale_factor = 0.02)",
)  # fmt: skip
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
_ARROW_TYPES = {20: pa.int64(), 23: pa.int32(), 21: pa.int16(), 701: pa.float64(), 700: pa.float32(),
                16: pa.bool_(), 1043: pa.string(), 25: pa.string()}  # fmt: skip


def _schema_statements() -> list[str]:
    """schema.sql with each growing table partitioned by day on its time column."""
    ddl = resources.files("hyperscope.store").joinpath("schema.sql").read_text()
    out = []
    for statement in ddl.split(";"):
        if "CREATE" not in statement:
            continue
        match = re.search(r"CREATE TABLE IF NOT EXISTS (\w+) \(", statement)
        if match and match.group(1) in PARTITIONED:
            statement = statement.rstrip() + f" PARTITION BY RANGE ({PARTITIONED[match.group(1)]})"
        out.append(statement)
    return out


class PostgresStore(SqlReads):
    backend = "postgresql"

    def __init__(self, url: str, *, writer: bool = False, create: bool = False, pool_size: int = 8) -> None:
        self.url = url
        self.path = redact(url)
        self.writer = writer
        self._pool: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._pool_slots = threading.BoundedSemaphore(pool_size)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._partitions: dict[str, set[int]] = {}
        # Test seam: called with a stage name between the statements of a write (crash-safety tests).
        self.fault_hook: Callable[[str], None] | None = None
        self._writer: psycopg.Connection[Any] | None = None
        self._latest: LatestUpdate | None = None
        self._following = False  # the listener is connected: `_latest` is current
        self._encoder = ThreadPoolExecutor(2, thread_name_prefix="pg-encode")
        self._vacuum = threading.Event()
        self._closing = threading.Event()
        self._vacuumer: threading.Thread | None = None
        try:
            if writer or create:
                self._writer = self._connect(autocommit=True, name="ingest" if writer else "setup")
                if writer:
                    self._take_writer_lock(self._writer)
                self._vacuumer = threading.Thread(target=self._vacuum_loop, name="pg-vacuum", daemon=True)
                self._vacuumer.start()
            if create:
                self._migrate()
            else:
                self._check_schema()
            self._types = self._column_types()
            self._partitions = self._known_partitions()
            self._latest = self._read_latest()
            if not writer:  # a reader follows the writer's commits as they happen
                threading.Thread(target=self._follow, name="pg-follow", daemon=True).start()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ plumbing

    def _connect(self, *, autocommit: bool, name: str = "api") -> psycopg.Connection[Any]:
        try:
            label = f"hyperscope {name} pid={os.getpid()} host={socket.gethostname()}"
            con = psycopg.connect(self.url, autocommit=autocommit, connect_timeout=10, application_name=label)
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
            raise StoreUnavailable(f"the store could not answer ({type(e).__name__}); try again",
                                   detail=self._text(e)) from e  # fmt: skip
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
        self._latest = self._read_latest()
        self._partitions = self._known_partitions()
        log.warning("reconnected to the store and took the writer lock again (newest height %s)",
                    self._latest.height if self._latest else None)  # fmt: skip
        return con

    def _vacuum_loop(self) -> None:
        """After each state update, vacuum the tables it rewrote (open positions, profiles, lifecycles) from a
        connection of its own, so their dead rows are reused by the next update instead of piling up between
        autovacuum's visits. Runs while the source makes the next update; never holds up a write."""
        con: psycopg.Connection[Any] | None = None
        while not self._closing.is_set():
            if not self._vacuum.wait(1.0):
                continue
            self._vacuum.clear()
            try:
                con = con or self._connect(autocommit=True, name="ingest-vacuum")
                con.execute("VACUUM (SKIP_LOCKED) open_states, wallets, lifecycles")
            except (psycopg.Error, ConfigError) as e:
                log.warning("vacuum after a state update failed (autovacuum will do it): %s", self._text(e))
                if con is not None:
                    con.close()
                con = None
        if con is not None:
            con.close()

    # ------------------------------------------------------------ schema

    def _migrate(self) -> None:
        assert self._writer is not None
        con = self._writer
        with self._errors(), con.transaction():
            # one process migrates at a time: the others wait here, then find the schema current
            con.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK + 1,))
            con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"database {self.path} has hyperscope schema version {version}; this hyperscope knows up to "
                    f"{SCHEMA_VERSION}"
                )
            if version == 0:
                for statement in (*_schema_statements(), *INDEXES):
                    con.execute(statement)  # type: ignore[call-overload]
                con.execute("INSERT INTO meta VALUES ('schema_version', %s)", (str(SCHEMA_VERSION),))
            # later versions: their steps, version -> next, as the DuckDB store's _upgrades() does
            if 0 < version < SCHEMA_VERSION:
                if version < 5:
                    raise ConfigError(
                        f"database {self.path} has hyperscope schema version {version}, older than "
                        "this hyperscope migrates (5); ingest it again into a new database"
                    )
                con.execute("ALTER TABLE state_updates ADD COLUMN IF NOT EXISTS market_data VARCHAR DEFAULT ''")
                con.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def _check_schema(self) -> None:
        try:
            version = self._scalar("SELECT value FROM meta WHERE key = 'schema_version'")
        except StoreFailed:
            version = None
        if version is None:
            raise ConfigError(
                f"no hyperscope data in {self.path}; create it with `hyperscope ingest --store ...` (or `run`)"
            )
        if int(version) != SCHEMA_VERSION:
            raise ConfigError(
                f"database {self.path} has hyperscope schema version {version}; this hyperscope serves "
                f"{SCHEMA_VERSION} (run the matching `hyperscope ingest` to migrate it)"
            )

    def _column_types(self) -> dict[str, dict[str, str]]:
        rows = self._dicts(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        )
        types: dict[str, dict[str, str]] = {}
        for r in rows:
            types.setdefault(r["table_name"], {})[r["column_name"]] = r["data_type"]
        return types

    def _known_partitions(self) -> dict[str, set[int]]:
        rows = self._dicts(
            "SELECT p.relname AS parent, c.relname AS child FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relnamespace = current_schema()::regnamespace"
        )
        known: dict[str, set[int]] = {t: set() for t in PARTITIONED}
        for r in rows:
            if r["parent"] in known:
                known[r["parent"]].add(int(r["child"].rsplit("_d", 1)[1]))
        return known

    def _ensure_partitions(self, wanted: dict[str, tuple[int, int]]) -> None:
        """Daily partitions covering each table's [lo, hi] times (and the next day's, so that a write rarely
        waits for one), made before the state update's transaction. A new partition is created on its own and
        then attached, which locks the parent only against other schema changes, never against readers."""
        assert self._writer is not None
        con = self._writer
        for table, (lo, hi) in wanted.items():
            for day in range(lo // DAY_MS, hi // DAY_MS + 2):
                if day in self._partitions[table]:
                    continue
                name = f"{table}_d{day}"
                with self._errors():
                    if self._parent_of(name) is None:
                        con.execute(f"CREATE TABLE IF NOT EXISTS {name} (LIKE {table} INCLUDING DEFAULTS)")  # type: ignore[call-overload]
                        with con.transaction():
                            con.execute("SET LOCAL lock_timeout = '10s'")
                            con.execute(f"ALTER TABLE {table} ATTACH PARTITION {name} "  # type: ignore[call-overload]
                                        f"FOR VALUES FROM ({day * DAY_MS}) TO ({(day + 1) * DAY_MS})")  # fmt: skip
                self._partitions[table].add(day)

    def _parent_of(self, name: str) -> tuple[str, bool] | None:
        """(parent, detach pending) of a partition, or None when it is not attached."""
        assert self._writer is not None
        row = self._writer.execute(
            "SELECT p.relname, i.inhdetachpending FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace",
            (name,),
        ).fetchone()
        return (str(row[0]), bool(row[1])) if row else None

    # ------------------------------------------------------------ meta and state

    def set_meta(self, key: str, value: str) -> None:
        sql = "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        self._read(lambda con: con.execute(sql, (key, value)))

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

    def _follow(self) -> None:
        """LISTEN for the writer's commits on a connection of its own; re-read the newest update every second
        as well (a notification lost with a connection costs at most that), reconnect after failures."""
        while not self._closing.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as con:
                    con.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not self._closing.is_set():
                        self._latest = self._read_latest()
                        self._following = True
                        for note in con.notifies(timeout=1.0, stop_after=1):
                            height, when, ingested = (int(x) for x in note.payload.split(","))
                            if self._latest is None or height > self._latest.height:
                                self._latest = LatestUpdate(height, when, ingested)
            except (psycopg.Error, StoreUnavailable, StoreFailed) as e:
                self._following = False
                log.warning(
                    "lost the store's update notifications (%s); reading the newest height directly", self._text(e)
                )
                self._closing.wait(2.0)
        self._following = False

    def load_open_positions(self) -> pa.Table:
        fields = ", ".join(c for c in self._types["positions_open"] if c != "wallet")
        return as_open_positions(self._arrow(f"SELECT {fields} FROM positions_open"))

    # ------------------------------------------------------------ the write path

    def _stage(self, name: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(name)

    def _encode(self, table: str, rows: pa.Table, types: dict[str, str] | None = None) -> tuple[list[str], bytes]:
        """(columns, binary COPY payload) of rows for `table` (cast to the table's own column types)."""
        rows = to_storage(rows)
        types = types or self._types[table]
        return rows.column_names, pgcopy.encode(rows, [types[c] for c in rows.column_names])

    def _copy(self, cur: psycopg.Cursor[Any], table: str, rows: pa.Table | Future[tuple[list[str], bytes]],
              types: dict[str, str] | None = None) -> None:  # fmt: skip
        """Append rows with binary COPY; `rows` may be a payload being encoded in the background."""
        if isinstance(rows, pa.Table) and rows.num_rows == 0:
            return
        columns, payload = rows.result() if isinstance(rows, Future) else self._encode(table, rows, types)
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:  # type: ignore[call-overload]
            copy.write(payload)

    def _partitions_of(self, batch: WriteBatch) -> dict[str, tuple[int, int]]:
        wanted = {t: (batch.time, batch.time) for t in (*SERIES_TABLES, "markets", "wallet_marks", "funding_hourly")}
        if batch.positions_closed.num_rows:
            close = to_storage(batch.positions_closed.select(["close_time"])).column(0).to_numpy()
            wanted["positions_closed"] = (int(close.min()), int(close.max()))
        if batch.fills is not None and batch.fills.num_rows:
            times = to_storage(batch.fills.select(["time"])).column(0).to_numpy()
            wanted["fills"] = (int(times.min()), int(times.max()))
        if batch.orders is not None and batch.orders.ended_time is not None:
            wanted["order_ends"] = (batch.orders.ended_time, batch.orders.ended_time)
        return wanted

    def write_update(self, batch: WriteBatch) -> None:
        """Write one state update as one transaction (a no-op for a height already stored)."""
        with self._write_lock:
            con = self._live_writer()
            self._ensure_partitions(self._partitions_of(batch))
            # the big payloads are encoded on other threads (numpy lets go of the GIL) while the transaction
            # streams the small ones and the server works
            states = batch.positions_open.select(STATE_COLUMNS)
            pending = {
                "open_states": self._encoder.submit(self._encode, "open_states",
                                                    states.take(pc.sort_indices(states.column("key")))),
                "wallets": self._encoder.submit(self._encode, "wallets", batch.wallets),
            }  # fmt: skip
            with self._errors(), con.transaction():
                cur = con.cursor()
                if cur.execute("SELECT 1 FROM state_updates WHERE height = %s", (batch.height,)).fetchone():
                    # stored already: a commit whose answer the connection lost before it reached us
                    self._latest = LatestUpdate(batch.height, batch.time, batch.ingested_at)
                    return
                self._write(cur, batch, pending)
                cur.execute("SELECT pg_notify(%s, %s)",
                            (NOTIFY_CHANNEL, f"{batch.height},{batch.time},{batch.ingested_at}"))  # fmt: skip
            self._latest = LatestUpdate(batch.height, batch.time, batch.ingested_at)
            self._vacuum.set()

    def _write(self, cur: psycopg.Cursor[Any], batch: WriteBatch, pending: dict[str, Future[Any]]) -> None:
        c = batch.counts
        cur.execute(
            "INSERT INTO state_updates (height, time, source, positions, wallets, opened, closed, liquidations, "
            "ingested_at, ingest_seconds, has_orders, market_data) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (batch.height, batch.time, batch.source, c["positions"], c["wallets"], c["opened"], c["closed"],
             c["liquidations"], batch.ingested_at, batch.ingest_seconds, batch.orders is not None, batch.market_data),
        )  # fmt: skip
        n = batch.markets.num_rows
        markets = batch.markets.add_column(0, "time", pa.array(np.full(n, batch.time, np.int64)))
        self._copy(cur, "markets", markets.add_column(0, "height", pa.array(np.full(n, batch.height, np.int64))))
        cur.execute(
            "INSERT INTO coins SELECT coin, lower(coin), dex, height FROM markets WHERE height = %s AND time = %s "
            "ON CONFLICT (coin) DO UPDATE SET coin_lower = EXCLUDED.coin_lower, dex = EXCLUDED.dex, "
            "last_height = EXCLUDED.last_height",
            (batch.height, batch.time),
        )
        self._stage("markets")
        opened = batch.positions_opened.select(LIFECYCLE_COLUMNS)
        self._copy(cur, "lifecycles", opened.append_column("wallet", pa.array(wallet_keys(opened.column("address")))))
        closed = batch.positions_closed
        if closed.num_rows:
            cur.execute("DELETE FROM lifecycles WHERE key = ANY(%s)", (closed.column("key").to_numpy().tolist(),))
        self._stage("lifecycles")
        cur.execute("DELETE FROM open_states")
        self._stage("open_states_deleted")
        self._copy(cur, "open_states", pending["open_states"])
        self._stage("open_states")
        if closed.num_rows:
            fields = batch.markets.select(["coin", "mid_px", "premium", "sz_decimals", "max_leverage"])
            closed = closed.join(fields, "coin", join_type="left outer")
            self._copy(
                cur, "positions_closed", closed.append_column("wallet", pa.array(wallet_keys(closed.column("address"))))
            )
        self._stage("positions")
        if batch.orders is not None:
            self._write_orders(cur, batch.orders, batch.height)
        if batch.marks is not None and batch.marks.num_rows:
            self._copy(cur, "wallet_marks", batch.marks.add_column(
                0, "time", pa.array(np.full(batch.marks.num_rows, batch.time, np.int64))))  # fmt: skip
        if batch.funding is not None and batch.funding.num_rows:
            self._copy(cur, "funding_hourly", batch.funding)
        self._stage("orders")
        if batch.wallets.num_rows:  # the changed profiles replace theirs: addresses staged, one hash join
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS changed_wallets (address VARCHAR) ON COMMIT DELETE ROWS")
            self._copy(cur, "changed_wallets", batch.wallets.select(["address"]), {"address": "character varying"})
            cur.execute("ANALYZE changed_wallets")  # a temporary table has no statistics: without, no hash join
            cur.execute("DELETE FROM wallets w USING changed_wallets c WHERE w.address = c.address")
            self._stage("wallets_deleted")
            self._copy(cur, "wallets", pending["wallets"])
        self._stage("wallets")
        if batch.fills is not None and batch.fills.num_rows:
            fills = batch.fills.add_column(0, "height", pa.array(np.full(batch.fills.num_rows, batch.height, np.int64)))
            self._copy(cur, "fills", fills)
        for table, rows in batch.series.items():
            m = rows.num_rows
            first = self._next_id(cur, table, m)
            rows = rows.add_column(0, "created_at", pa.array(np.full(m, batch.time, np.int64)))
            rows = rows.add_column(0, "height", pa.array(np.full(m, batch.height, np.int64)))
            rows = rows.add_column(0, "id", pa.array(np.arange(first, first + m, dtype=np.int64)))
            self._copy(cur, table, rows)
            self._stage(table)

    @staticmethod
    def _next_id(cur: psycopg.Cursor[Any], table: str, count: int) -> int:
        """Reserve `count` row ids of a metrics table, inside the write's transaction (kept in meta, so no
        process holds them in memory)."""
        row = cur.execute(
            "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE "
            "SET value = (meta.value::bigint + %s)::varchar RETURNING value",
            (f"next_id:{table}", str(1 + count), count),
        ).fetchone()
        assert row is not None
        return int(row[0]) - count

    def _write_orders(self, cur: psycopg.Cursor[Any], orders: OrderWrite, height: int) -> None:
        ends, spans = order_rows(orders, height)
        if ends is not None:
            self._copy(cur, "order_ends", ends)
        if spans is not None:
            self._copy(cur, "order_spans", spans)

    def open_order_spans(self) -> tuple[np.ndarray, tuple[int, int] | None]:
        """Span keys of the orders open at the newest update with orders, and that update's (height, time)."""
        keys = self._arrow(
            "SELECT s.span FROM order_spans s WHERE NOT EXISTS (SELECT 1 FROM order_ends e WHERE e.span = s.span)"
        )
        rows = self._dicts("SELECT height, time FROM state_updates WHERE has_orders ORDER BY height DESC LIMIT 1")
        at = (rows[0]["height"], rows[0]["time"]) if rows else None
        return np.asarray(keys.column("span").to_numpy(zero_copy_only=False), np.int64), at

    def apply_retention(self, policy: Retention, now: int) -> dict[str, int]:
        """Drop whole daily partitions past each table's retention, then delete the rows the policy no
        longer keeps in what remains (the same rules as the DuckDB store: thinning, the newest update kept)."""
        cut = (now - policy.full_resolution) // policy.thin_every * policy.thin_every
        expired = now - policy.metrics
        deleted: dict[str, int] = {}
        with self._write_lock:
            con = self._live_writer()
            latest = self.latest()
            newest = latest.height if latest else -1
            keep_from = min(expired, latest.time if latest else expired)  # the newest update keeps its rows
            horizons = {
                **dict.fromkeys((*SERIES_TABLES, "markets"), keep_from),
                "positions_closed": now - policy.positions,
                "fills": now - policy.fills,
                "wallet_marks": now - policy.metrics - DAY_MS,
                "funding_hourly": now - policy.funding,
            }
            # (order_ends loses rows, not partitions: its rows say which order spans go with them)
            deleted["partitions"] = self._drop_partitions(horizons)
            with self._errors(), con.transaction():
                cur = con.cursor()
                doomed = [h for (h,) in cur.execute(
                    "SELECT height FROM (SELECT height, time, row_number() OVER (PARTITION BY time / %s "
                    "ORDER BY time DESC, height DESC) AS rn FROM state_updates WHERE time < %s AND NOT thinned) AS t "
                    "WHERE rn > 1 UNION SELECT height FROM state_updates WHERE time < %s",
                    (policy.thin_every, cut, expired),
                ).fetchall() if h != newest]  # fmt: skip
                if doomed:
                    for table in (*SERIES_TABLES, "markets"):
                        deleted[table] = cur.execute(f"DELETE FROM {table} WHERE height = ANY(%s)", (doomed,)).rowcount  # type: ignore[call-overload]
                cur.execute("UPDATE state_updates SET thinned = true WHERE time < %s AND NOT thinned", (cut,))
                steps = {
                    "state_updates": ("DELETE FROM state_updates WHERE time < %s AND height <> %s", (expired, newest)),
                    "positions_closed": ("DELETE FROM positions_closed WHERE close_time < %s",
                                         (now - policy.positions,)),
                    "fills": ("DELETE FROM fills WHERE time < %s", (now - policy.fills,)),
                    "order_spans": ("DELETE FROM order_spans WHERE span IN (SELECT span FROM order_ends "
                                    "WHERE last_time < %s)", (now - policy.orders,)),
                    "order_ends": ("DELETE FROM order_ends WHERE last_time < %s", (now - policy.orders,)),
                    "funding_hourly": ("DELETE FROM funding_hourly WHERE time < %s", (now - policy.funding,)),
                    "wallet_marks": ("DELETE FROM wallet_marks WHERE time < %s OR (time < %s AND NOT full_mark)",
                                     (now - policy.metrics - DAY_MS, now - 2 * DAY_MS)),
                }  # fmt: skip
                for name, (sql, params) in steps.items():
                    deleted[name] = cur.execute(sql, params).rowcount  # type: ignore[call-overload]
        return deleted

    def _drop_partitions(self, horizons: dict[str, int]) -> int:
        """Drop the daily partitions that lie wholly before their table's horizon; returns how many.

        Each is first detached CONCURRENTLY (which waits for the readers that may still see it rather than
        locking them out) and then dropped on its own. A pass that times out leaves the rest to the next one,
        finishing a half-done detach first."""
        assert self._writer is not None
        con = self._writer
        dropped = 0
        for table, horizon in horizons.items():
            for day in sorted(d for d in self._partitions[table] if (d + 1) * DAY_MS <= horizon):
                name = f"{table}_d{day}"
                try:
                    with self._errors():
                        con.execute("SET lock_timeout = '2s'")
                        try:
                            attached = self._parent_of(name)
                            if attached is not None:
                                how = "FINALIZE" if attached[1] else "CONCURRENTLY"
                                con.execute(f"ALTER TABLE {table} DETACH PARTITION {name} {how}")  # type: ignore[call-overload]
                            con.execute(f"DROP TABLE IF EXISTS {name}")  # type: ignore[call-overload]
                        finally:
                            con.execute("RESET lock_timeout")
                except StoreUnavailable as e:  # a long reader: never hold the writer up for more of them
                    log.info("retention: %s and older days stay until the next pass (%s)", name, e.detail)
                    return dropped
                self._partitions[table].discard(day)
                dropped += 1
        return dropped

    # ------------------------------------------------------------ reads for the service

    def sampled_series(self, series: Series, start: int, end: int, step_ms: int) -> list[dict[str, Any]]:
        table, where = series.located()
        clauses = ["created_at >= %s", "created_at <= %s"] + [f"{c} = %s" for c in where]
        sql = (
            f"SELECT DISTINCT ON (bucket) * FROM (SELECT *, (created_at + %s - 1) / %s AS bucket FROM {table} "
            f"WHERE {' AND '.join(clauses)}) AS t ORDER BY bucket DESC, created_at DESC, id DESC"
        )
        rows = self._dicts(sql, [step_ms, step_ms, start, end, *where.values()])
        for row in rows:
            del row["bucket"]
        return rows

    def position_history(self, query: HistoryQuery) -> list[dict[str, Any]]:
        """Open and closed lifecycles matching `query`, in its order, after its cursor, `limit` rows (the
        same contract as the DuckDB store's; here B-tree indexes on coin, wallet and key serve it)."""
        sort = HISTORY_SORT[query.order_by]
        where: list[str] = ["open_time <= %s"]
        params: list[Any] = [query.end]
        if query.coins is not None:
            where.append("coin = ANY(%s)")
            params.append(list(query.coins))
        if query.addresses is not None:
            where.append("wallet = ANY(%s) AND address = ANY(%s)")
            params += [[int(a[2:17], 16) for a in query.addresses], list(query.addresses)]
        if query.segment is not None:
            where.append("(size_segment = %s OR pnl_segment = %s)")
            params += [query.segment, query.segment]
        if query.after is not None:
            op = "<" if query.descending else ">"
            where.append(f"({sort} {op} %s OR ({sort} = %s AND key {op} %s))")
            params += [query.after[0], query.after[0], query.after[1]]
        fields = ", ".join(HISTORY_FIELDS)
        market = "mid_px, premium, sz_decimals, max_leverage"
        branches, branch_params = [], []
        condition = " AND ".join(where)
        if query.open is not False:
            branches.append(f"SELECT {fields}, key, {sort} AS sort_key, false AS closed, NULL::float8 AS mid_px, "
                            "NULL::float8 AS premium, NULL::int AS sz_decimals, NULL::int AS max_leverage "
                            f"FROM positions_open WHERE {condition}")  # fmt: skip
            branch_params += params
        if query.open is not True:
            branches.append(f"SELECT {fields}, key, {sort} AS sort_key, true AS closed, {market} "
                            f"FROM positions_closed WHERE close_time >= %s AND {condition}")  # fmt: skip
            branch_params += [query.start, *params]
        direction = "DESC" if query.descending else "ASC"
        rows = self._dicts(f"SELECT * FROM ({' UNION ALL '.join(branches)}) AS t "
                           f"ORDER BY sort_key {direction}, key {direction} LIMIT %s",
                           [*branch_params, query.limit])  # fmt: skip
        if any(not r["closed"] for r in rows):
            latest = self.latest()
            markets = self._markets_at(latest.height if latest else -1)
            for row in rows:
                if not row["closed"]:
                    row.update(markets.get(row["coin"], MISSING_MARKET))
        for row in rows:
            del row["closed"]
        return rows

    def wallet_baselines(self, time: int) -> pa.Table:
        """Per wallet, its PnL and volume at its newest mark at or before `time`, or at its first mark when
        it has none by then (address, pnl, volume)."""
        return self._arrow(
            "SELECT DISTINCT ON (address) address, pnl, volume FROM wallet_marks WHERE time > %s "
            "ORDER BY address, (time <= %s) DESC, CASE WHEN time <= %s THEN -time ELSE time END",
            (time - 2 * DAY_MS, time, time),
        )

    def legacy_keys(self) -> list[dict[str, Any]]:
        return []  # keys have always lived in the database itself here (store/keys.py PostgresKeyStore)

    def close(self) -> None:
        self._closing.set()
        self._encoder.shutdown(wait=True)
        if self._vacuumer is not None:
            self._vacuumer.join(timeout=30)  # a vacuum in progress finishes before the session ends
        self._drain_pool()
        if self._writer is not None:
            self._writer.close()  # ends the session: the writer lock goes with it
            self._writer = None
