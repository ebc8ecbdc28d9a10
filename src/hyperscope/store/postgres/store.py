"""The PostgreSQL store: one database that one ingest process writes and any number of API processes read.

The schema is schema.sql (the subset both backends run) with PostgreSQL's own additions kept here: the tables that
grow with time are range-partitioned by day on their time column (retention drops whole partitions), and B-tree
indexes serve the read paths. One state update is written with binary COPY (postgres/copy.py) in two transactions,
its open positions and changed profiles on a second connection in parallel, committed just before the one that
writes the update's own row; readers see those rows through views of the published update and use MVCC snapshots,
so they never wait for the writer and never see half an update. A session advisory lock admits one writer per
database. Nothing a reader needs lives in this process: the newest height, metric row ids and key changes are read
from the database.

psycopg exceptions are translated to ours here and nowhere else.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pyarrow as pa
from psycopg.rows import dict_row

from hyperscope.dsn import redact
from hyperscope.errors import StoreFailed, StoreUnavailable
from hyperscope.store.base import (
    DAY_MS,
    HISTORY_FIELDS,
    MISSING_MARKET,
    HistoryQuery,
    LatestUpdate,
    Series,
    as_open_positions,
)
from hyperscope.store.history import POSTGRES, history_page
from hyperscope.store.postgres.connection import NOTIFY_CHANNEL
from hyperscope.store.postgres.schema import LIFECYCLE_ONLY
from hyperscope.store.postgres.writer import PgWriter

log = logging.getLogger("hyperscope.store")


class PostgresStore(PgWriter):
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
        self._ahead = ThreadPoolExecutor(1, thread_name_prefix="pg-ahead")  # writes an update's rows ahead of it
        self._ahead_con: psycopg.Connection[Any] | None = None
        self._unpublished = True  # rows written ahead may be in the store without their update (until a commit)
        self._sweeping = threading.Lock()
        self._swept: int | None = None
        self._recent: pa.Table | None = None
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

    def set_meta(self, key: str, value: str) -> None:
        sql = "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        self._read(lambda con: con.execute(sql, (key, value)))

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
        return as_open_positions(self._arrow(f"SELECT {fields} FROM positions_open ORDER BY key"))

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
        same contract as the DuckDB store's; here B-tree indexes on coin, wallet and key serve it).

        The open branch reads the open positions alone (`open_rows`: they carry their coin, opening time and
        wallet key), so no join hashes every open lifecycle; the columns only a lifecycle has are then read
        for the page's open rows by key, whose address is checked there (the branch compared the wallet key).
        Both run in one repeatable-read transaction, so they see the same state update."""
        fields = ", ".join(HISTORY_FIELDS)
        extra = f"{fields}, mid_px, premium, sz_decimals, max_leverage"
        nothing = "NULL::float8 AS mid_px, NULL::float8 AS premium, NULL::int AS sz_decimals, NULL::int AS max_leverage"
        sql, params = history_page(query, POSTGRES, f"{fields}, {nothing}", extra)
        lifecycle = f"SELECT key, {', '.join(LIFECYCLE_ONLY)} FROM lifecycles WHERE key = ANY(%s)"

        def read(con: psycopg.Connection[Any]) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
            with con.transaction():
                cur = con.cursor(row_factory=dict_row)
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                page = list(cur.execute(sql, params).fetchall())  # type: ignore[arg-type]
                keys = [r["key"] for r in page if not r["closed"]]
                identities = cur.execute(lifecycle, (keys,)).fetchall() if keys else []
            return page, {r["key"]: r for r in identities}

        page, identities = self._read(read)
        markets: dict[str, dict[str, Any]] = {}
        if identities:
            latest = self.latest()
            markets = self._markets_at(latest.height if latest else -1)
        rows = []
        for row in page:
            if not row.pop("closed"):
                row.update(identities[row["key"]])
                row.update(markets.get(row["coin"], MISSING_MARKET))
                if query.addresses is not None and row["address"] not in query.addresses:
                    continue  # another wallet whose key is the same (60 bits of address: practically never)
            rows.append(row)
        return rows

    def wallet_baselines(self, time: int) -> pa.Table:
        """Per wallet, its PnL and volume at its newest mark at or before `time`, or at its first mark when
        it has none by then (address, pnl, volume, size_segment)."""
        return self._arrow(
            "SELECT DISTINCT ON (address) address, pnl, volume, size_segment FROM wallet_marks WHERE time > %s "
            "ORDER BY address, (time <= %s) DESC, CASE WHEN time <= %s THEN -time ELSE time END",
            (time - 2 * DAY_MS, time, time),
        )

    def legacy_keys(self) -> list[dict[str, Any]]:
        return []  # keys have always lived in the database itself here (store/keys.py PostgresKeyStore)

    def close(self) -> None:
        self._closing.set()
        self._encoder.shutdown(wait=True)
        self._ahead.shutdown(wait=True)
        if self._ahead_con is not None:
            self._ahead_con.close()
        if self._vacuumer is not None:
            self._vacuumer.join(timeout=30)  # a vacuum in progress finishes before the session ends
        self._drain_pool()
        if self._writer is not None:
            self._writer.close()  # ends the session: the writer lock goes with it
            self._writer = None
