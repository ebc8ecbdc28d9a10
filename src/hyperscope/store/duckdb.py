"""The embedded DuckDB store: one file, one writer, MVCC readers.

One state update is written as one transaction: readers see all of it or none of it, and a process killed
mid-write leaves the file as it was before (DuckDB writes its WAL at commit). DuckDB exceptions are
translated to ours here and nowhere else.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from hyperscope.domain.ids import position_ids
from hyperscope.errors import ConfigError, StoreFailed, StoreUnavailable
from hyperscope.store.base import (
    DAY_MS,
    HISTORY_FIELDS,
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
from hyperscope.store.history import DUCKDB, history_page
from hyperscope.store.sql import SqlReads

log = logging.getLogger("hyperscope.store")
_TRANSIENT = (duckdb.IOException, duckdb.OutOfMemoryException, duckdb.TransactionException, duckdb.InterruptException)


# a wallet's key: the first 60 bits of its address (hex digits 3-17) as an integer
WALLET_KEY = "('0x' || substr(address, 3, 15))::BIGINT"
CLOSED_MARKET_COLUMNS = ("mid_px DOUBLE", "premium DOUBLE", "sz_decimals INTEGER", "max_leverage INTEGER")


def _upgrades() -> dict[int, list[str]]:
    """version -> the statements that take a store from it to the next version (run in one transaction)."""
    ddl = resources.files("hyperscope.store").joinpath("schema.sql").read_text()
    statements = ddl.split(";")

    def tables(*names: str) -> list[str]:
        return [s for s in statements if any(f"TABLE IF NOT EXISTS {t} (" in s for t in names)]

    new_tables = tables("order_spans", "order_ends", "wallet_marks")
    (view,) = [s for s in statements if "VIEW positions_open" in s]
    return {
        2: ["ALTER TABLE state_updates ADD COLUMN thinned BOOLEAN DEFAULT false"],  # retention's thinning
        # order snapshots, period leaderboards, market fields of closed positions, wallet keys of lifecycles
        3: ["ALTER TABLE state_updates ADD COLUMN has_orders BOOLEAN DEFAULT false",
            *[f"ALTER TABLE positions_closed ADD COLUMN {c}" for c in CLOSED_MARKET_COLUMNS], *new_tables,
            *[s for t in ("lifecycles", "positions_closed") for s in (
                f"ALTER TABLE {t} ADD COLUMN wallet BIGINT", f"UPDATE {t} SET wallet = {WALLET_KEY}")],
            "DROP VIEW positions_open", view],
        4: tables("funding_hourly"),  # the Coin Metrics-style funding series
        5: ["ALTER TABLE state_updates ADD COLUMN market_data VARCHAR DEFAULT ''"],  # where marks came from
    }  # fmt: skip


class DuckDBStore(SqlReads):
    backend = "duckdb"
    IN_LIST = "IN (SELECT unnest(?))"  # DuckDB pushes this form of a list filter into the scan

    def __init__(self, path: Path | str, *, read_only: bool = False, memory_mib: int = 1024, threads: int = 2) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # DuckDB's default memory limit is 80% of the machine; its buffer pool grows towards it and keeps
        # what it took, so a long-running process would too. Bound it (and its threads) explicitly.
        config: dict[str, str | bool | int | float | list[str]] = {
            "memory_limit": f"{memory_mib}MB",
            "threads": threads,
        }
        self._open_args = {"read_only": read_only, "config": config}
        self._generation = 0  # moves on each reopen: thread-local cursors of an older connection are dropped
        self._invalid: str | None = None  # why the connection must be reopened before its next use
        self._reopen_lock = threading.Lock()
        try:
            self._con = duckdb.connect(self.path, read_only=read_only, config=config)
        except duckdb.IOException as e:
            if "lock" in str(e).lower():
                holder = re.search(r"\(PID (\d+)\)", str(e))
                who = f" (PID {holder.group(1)})" if holder else ""
                raise ConfigError(
                    f"store {self.path} is in use by another process{who}: an embedded DuckDB store serves one "
                    "process at a time, so stop `hyperscope run`/`serve` before running this command"
                ) from e
            raise ConfigError(f"cannot open DuckDB store {self.path}: {e}") from e
        except duckdb.Error as e:
            raise ConfigError(f"cannot open DuckDB store {self.path}: {e}") from e
        self._local = threading.local()
        self._write_lock = threading.Lock()
        # Test seam: called with a stage name between the statements of a write (crash-safety tests).
        self.fault_hook: Callable[[str], None] | None = None
        if not read_only:
            self._migrate()
        self._next_ids = {t: self._scalar(f"SELECT coalesce(max(id), 0) + 1 FROM {t}") for t in SERIES_TABLES}
        self._latest = self._read_latest()

    # ------------------------------------------------------------ plumbing

    def _connection(self) -> duckdb.DuckDBPyConnection:
        """The database connection; after a fatal error (DuckDB then refuses every statement until the
        database is opened again) a new one, opened from the file as it is on disk (its WAL replayed), with
        what this object keeps in memory read anew. StoreUnavailable while that cannot be done."""
        if self._invalid is None:
            return self._con
        with self._reopen_lock:
            if self._invalid is None:
                return self._con
            try:
                self._con.close()
            except duckdb.Error:
                pass
            try:
                self._con = duckdb.connect(self.path, **self._open_args)  # type: ignore[arg-type]
            except duckdb.Error as e:
                raise StoreUnavailable("the store cannot be opened again yet; try again", detail=str(e)) from e
            self._generation += 1
            reason, self._invalid = self._invalid, None
            log.warning("reopened the store after a fatal error (%s)", reason)
        with self._errors():
            self._next_ids = {t: self._scalar(f"SELECT coalesce(max(id), 0) + 1 FROM {t}") for t in SERIES_TABLES}
            self._latest = self._read_latest()
        return self._con

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        con = self._connection()
        cur = getattr(self._local, "cursor", None)
        if cur is None or getattr(self._local, "generation", -1) != self._generation:
            cur = con.cursor()
            self._local.cursor, self._local.generation = cur, self._generation
        return cur

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """DuckDB's exceptions as ours: what may work later (I/O, disk full, memory, a conflict) is
        StoreUnavailable; a fatal error too, once (the connection is reopened at its next use: a disk that
        failed a write may work again); anything else means the store or this code is broken: StoreFailed."""
        try:
            yield
        except _TRANSIENT as e:
            raise StoreUnavailable(f"the store could not answer ({type(e).__name__}); try again", detail=str(e)) from e
        except duckdb.Error as e:
            if isinstance(e, duckdb.FatalException) or "invalidated" in str(e):
                self._invalid = f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
                raise StoreUnavailable("the store hit a fatal error and is opened again; try again",
                                       detail=str(e)) from e  # fmt: skip
            raise StoreFailed(f"the store failed ({type(e).__name__})", detail=str(e)) from e

    def _scalar(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> Any:
        with self._errors():
            # fetchall, never fetchone: an unfinished result keeps the cursor's snapshot open, and an open
            # snapshot stops DuckDB from reclaiming the rows each state update deletes
            rows = self._cursor().execute(sql, list(params)).fetchall()
        return rows[0][0] if rows else None

    def _dicts(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._errors():
            cur = self._cursor().execute(sql, list(params))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def _arrow(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> pa.Table:
        with self._errors():
            result: pa.Table = self._cursor().sql(sql, params=list(params)).to_arrow_table()
        return result

    def _migrate(self) -> None:
        with self._errors():
            self._con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
            rows = self._con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
            version = int(rows[0][0]) if rows else 0
            if version == 1:
                raise ConfigError(
                    f"store {self.path} was made by a pre-release build (schema 1); remove it and backfill again"
                )
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"store {self.path} has schema version {version}; this hyperscope knows up to {SCHEMA_VERSION}"
                )
            if 2 <= version < SCHEMA_VERSION:
                self._con.execute("BEGIN TRANSACTION")
                upgrades = _upgrades()
                for step in range(version, SCHEMA_VERSION):
                    for statement in upgrades[step]:
                        self._con.execute(statement)
                self._con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])
                self._con.execute("COMMIT")
            elif version < SCHEMA_VERSION:
                ddl = resources.files("hyperscope.store").joinpath("schema.sql").read_text()
                self._con.execute("BEGIN TRANSACTION")
                for statement in ddl.split(";"):
                    if "CREATE" in statement:
                        self._con.execute(statement)
                self._con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
                self._con.execute("COMMIT")

    # ------------------------------------------------------------ meta and state

    def set_meta(self, key: str, value: str) -> None:
        with self._write_lock, self._errors():
            con = self._connection()
            con.execute("DELETE FROM meta WHERE key = ?", [key])
            con.execute("INSERT INTO meta VALUES (?, ?)", [key, value])

    def _read_latest(self) -> LatestUpdate | None:
        rows = self._dicts("SELECT height, time, ingested_at FROM state_updates ORDER BY height DESC LIMIT 1", [])
        return LatestUpdate(**rows[0]) if rows else None

    def latest(self) -> LatestUpdate | None:
        return self._latest

    def load_open_positions(self) -> pa.Table:
        with self._errors():
            table: pa.Table = self._cursor().sql("SELECT * EXCLUDE (wallet) FROM positions_open").to_arrow_table()
        return as_open_positions(table)

    # ------------------------------------------------------------ the write path

    def _stage(self, name: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(name)

    def _insert(self, con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table, wallet: str | None = None) -> None:
        """Append rows; `wallet` (an expression over `address`) fills the table's wallet key."""
        if rows.num_rows == 0:
            return
        view = f"incoming_{table}"
        con.register(view, to_storage(rows))
        try:
            cols = ", ".join(rows.column_names)
            extra = (", wallet", f", {wallet}") if wallet else ("", "")
            con.execute(f"INSERT INTO {table} ({cols}{extra[0]}) SELECT {cols}{extra[1]} FROM {view}")
        finally:
            con.unregister(view)

    def write_update(self, batch: WriteBatch) -> None:
        """Write one state update as one transaction (a no-op for a height already stored)."""
        with self._write_lock, self._errors():
            con = self._connection()
            if self.has_height(batch.height):
                return
            next_ids = dict(self._next_ids)
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(
                    "INSERT INTO state_updates (height, time, source, positions, wallets, opened, closed, "
                    "liquidations, ingested_at, ingest_seconds, has_orders, market_data) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [batch.height, batch.time, batch.source, batch.counts["positions"], batch.counts["wallets"],
                     batch.counts["opened"], batch.counts["closed"], batch.counts["liquidations"],
                     batch.ingested_at, batch.ingest_seconds, batch.orders is not None, batch.market_data],
                )  # fmt: skip
                n = batch.markets.num_rows
                markets = batch.markets.add_column(0, "time", pa.array([batch.time] * n, pa.int64()))
                markets = markets.add_column(0, "height", pa.array([batch.height] * n, pa.int64()))
                self._insert(con, "markets", markets)
                con.execute(
                    "DELETE FROM coins WHERE coin IN (SELECT coin FROM markets WHERE height = ?)",
                    [batch.height],
                )
                con.execute(
                    "INSERT INTO coins SELECT coin, lower(coin), dex, height FROM markets WHERE height = ?",
                    [batch.height],
                )
                self._stage("markets")
                self._insert(con, "lifecycles", batch.positions_opened.select(LIFECYCLE_COLUMNS), WALLET_KEY)
                if batch.positions_closed.num_rows:
                    con.register("ended", batch.positions_closed.select(["key"]))
                    try:
                        con.execute("DELETE FROM lifecycles WHERE key IN (SELECT key FROM ended)")
                    finally:
                        con.unregister("ended")
                con.execute("DELETE FROM open_states")
                self._insert(con, "open_states", batch.positions_open.select(STATE_COLUMNS))
                self._insert_closed(con, batch.positions_closed, batch.height)
                self._stage("positions")
                if batch.orders is not None:
                    self._write_orders(con, batch.orders, batch.height)
                if batch.marks is not None and batch.marks.num_rows:
                    n_marks = batch.marks.num_rows
                    self._insert(con, "wallet_marks", batch.marks.add_column(
                        0, "time", pa.array(np.full(n_marks, batch.time, np.int64))))  # fmt: skip
                if batch.funding is not None and batch.funding.num_rows:
                    self._insert(con, "funding_hourly", batch.funding)
                self._stage("orders")
                self._upsert_wallets(con, batch.wallets)
                self._stage("wallets")
                if batch.fills is not None and batch.fills.num_rows:
                    fills = batch.fills.add_column(
                        0, "height", pa.array([batch.height] * batch.fills.num_rows, pa.int64())
                    )
                    self._insert(con, "fills", fills)
                for table, rows in batch.series.items():
                    m = rows.num_rows
                    rows = rows.add_column(0, "created_at", pa.array([batch.time] * m, pa.int64()))
                    rows = rows.add_column(0, "height", pa.array([batch.height] * m, pa.int64()))
                    rows = rows.add_column(0, "id", pa.array(range(next_ids[table], next_ids[table] + m), pa.int64()))
                    next_ids[table] += m
                    self._insert(con, table, rows)
                    self._stage(table)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            self._next_ids = next_ids
            self._latest = LatestUpdate(batch.height, batch.time, batch.ingested_at)

    def _insert_closed(self, con: duckdb.DuckDBPyConnection, closed: pa.Table, height: int) -> None:
        """Closed lifecycles with the market fields (mid, premium, decimals, max leverage) at their close."""
        if closed.num_rows == 0:
            return
        con.register("incoming_closed", to_storage(closed))
        try:
            cols = ", ".join(closed.column_names)
            picked = ", ".join(f"c.{c}" for c in closed.column_names)
            con.execute(
                f"INSERT INTO positions_closed ({cols}, mid_px, premium, sz_decimals, max_leverage, wallet) "
                f"SELECT {picked}, m.mid_px, m.premium, m.sz_decimals, m.max_leverage, "
                f"{WALLET_KEY.replace('address', 'c.address')} FROM incoming_closed c "
                "LEFT JOIN markets m ON m.height = ? AND m.coin = c.coin",
                [height],
            )
        finally:
            con.unregister("incoming_closed")

    def _write_orders(self, con: duckdb.DuckDBPyConnection, orders: OrderWrite, height: int) -> None:
        ends, spans = order_rows(orders, height)
        if ends is not None:
            self._insert(con, "order_ends", ends)
        if spans is not None:
            self._insert(con, "order_spans", spans)

    def open_order_spans(self) -> tuple[np.ndarray, tuple[int, int] | None]:
        """Span keys of the orders open at the newest update with orders, and that update's (height, time)."""
        with self._errors():
            keys = (
                self._cursor()
                .execute("SELECT span FROM order_spans WHERE span NOT IN (SELECT span FROM order_ends)")
                .fetchnumpy()
            )
        rows = self._dicts("SELECT height, time FROM state_updates WHERE has_orders ORDER BY height DESC LIMIT 1", [])
        at = (rows[0]["height"], rows[0]["time"]) if rows else None
        return np.asarray(keys["span"], np.int64), at

    def apply_retention(self, policy: Retention, now: int) -> dict[str, int]:
        """Delete what the policy no longer keeps, in one transaction; returns rows deleted per table.

        Thinning works on whole state updates and whole intervals: once an interval of `thin_every` lies
        entirely past `full_resolution`, only its last state update keeps its metric rows, so every series
        stays complete at the heights it keeps. The newest state update is never deleted.
        """
        cut = (now - policy.full_resolution) // policy.thin_every * policy.thin_every
        expired = now - policy.metrics
        deleted: dict[str, int] = {}
        with self._write_lock, self._errors():
            con = self._connection()
            newest = self._latest.height if self._latest else -1
            doomed = con.execute(
                "SELECT height FROM (SELECT height, time, row_number() OVER (PARTITION BY time // ? "
                "ORDER BY time DESC, height DESC) AS rn FROM state_updates WHERE time < ? AND NOT thinned) AS t "
                "WHERE rn > 1 UNION SELECT height FROM state_updates WHERE time < ? ORDER BY height",
                [policy.thin_every, cut, expired],
            ).fetchall()
            heights = [h for (h,) in doomed if h != newest]
            con.execute("BEGIN TRANSACTION")
            try:
                if len(heights):
                    con.register("doomed", pa.table({"height": pa.array(heights, pa.int64())}))
                    try:
                        for table in (*SERIES_TABLES, "markets"):
                            deleted[table] = self._count(con.execute(
                                f"DELETE FROM {table} WHERE height BETWEEN ? AND ? "
                                "AND height IN (SELECT height FROM doomed)",
                                [int(heights[0]), int(heights[-1])],
                            ))  # fmt: skip
                    finally:
                        con.unregister("doomed")
                con.execute("UPDATE state_updates SET thinned = true WHERE time < ? AND NOT thinned", [cut])
                deleted["state_updates"] = self._count(
                    con.execute("DELETE FROM state_updates WHERE time < ? AND height <> ?", [expired, newest])
                )
                deleted["positions_closed"] = self._count(
                    con.execute("DELETE FROM positions_closed WHERE close_time < ?", [now - policy.positions])
                )
                deleted["fills"] = self._count(con.execute("DELETE FROM fills WHERE time < ?", [now - policy.fills]))
                gone = now - policy.orders
                deleted["order_spans"] = self._count(con.execute(
                    "DELETE FROM order_spans WHERE span IN (SELECT span FROM order_ends WHERE last_time < ?)", [gone]
                ))  # fmt: skip
                deleted["order_ends"] = self._count(con.execute("DELETE FROM order_ends WHERE last_time < ?", [gone]))
                deleted["funding_hourly"] = self._count(
                    con.execute("DELETE FROM funding_hourly WHERE time < ?", [now - policy.funding])
                )
                deleted["wallet_marks"] = self._count(con.execute(
                    "DELETE FROM wallet_marks WHERE time < ? OR (time < ? AND NOT full_mark)",
                    [now - policy.metrics - DAY_MS, now - 2 * DAY_MS],
                ))  # fmt: skip
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return deleted

    @staticmethod
    def _count(cur: duckdb.DuckDBPyConnection) -> int:
        rows = cur.fetchall()
        return int(rows[0][0]) if rows else 0

    def _upsert_wallets(self, con: duckdb.DuckDBPyConnection, wallets: pa.Table) -> None:
        """Replace the profiles of the given wallets; every other wallet keeps its last known profile."""
        if wallets.num_rows == 0:
            return
        con.register("incoming_wallets", to_storage(wallets))
        try:
            cols = ", ".join(wallets.column_names)
            con.execute("DELETE FROM wallets WHERE address IN (SELECT address FROM incoming_wallets)")
            con.execute(f"INSERT INTO wallets ({cols}) SELECT {cols} FROM incoming_wallets")
        finally:
            con.unregister("incoming_wallets")

    # ------------------------------------------------------------ reads for the service

    def sampled_series(self, series: Series, start: int, end: int, step_ms: int) -> list[dict[str, Any]]:
        """The last row at or before each multiple of `step_ms` in [start, end] (and the last row before
        `end` past the last multiple), newest first."""
        table, where = series.located()
        clauses = ["created_at >= ?", "created_at <= ?"] + [f"{c} = ?" for c in where]
        sql = (
            f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY (created_at + ? - 1) // ? "
            "ORDER BY created_at DESC, "
            f"id DESC) AS rn FROM {table} WHERE {' AND '.join(clauses)}) AS t WHERE rn = 1 "
            "ORDER BY created_at DESC, id DESC"
        )
        rows = self._dicts(sql, [step_ms, step_ms, start, end, *where.values()])
        for row in rows:
            row.pop("rn", None)
        return rows

    def position_history(self, query: HistoryQuery) -> list[dict[str, Any]]:
        """Open and closed lifecycles matching `query`, in its order, after its cursor, `limit` rows.

        A lifecycle matches the window when it was open at some moment of [start, end]. Closed ones carry
        the market fields of the state update that saw them close; open ones those of the newest update.

        The index plan: the first pass reads only the narrow columns that filter and sort (coin, the wallet
        key, times, the sort value and the lifecycle key) and keeps the page's keys and row ids; the second
        fetches the page's full rows by row id. Filtering by address scans the integer wallet key, never the
        address strings. Both passes run in one transaction, so they see the same rows.
        """
        page_sql, page_params = history_page(query, DUCKDB, "NULL::BIGINT AS rid", "rowid AS rid")
        fields = ", ".join(HISTORY_FIELDS)
        with self._errors():
            cur = self._cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                page = cur.execute(page_sql, page_params).fetchall()
                open_keys = [key for key, _, closed, _ in page if not closed]
                closed_rids = [rid for _, _, closed, rid in page if closed]
                rows: dict[int, dict[str, Any]] = {}
                if open_keys:
                    markets = self._markets_at(self._latest.height if self._latest else -1)
                    for row in self._dicts(f"SELECT {fields}, key FROM positions_open WHERE key = ANY(?)", [open_keys]):
                        row.update(markets.get(row["coin"], MISSING_MARKET))
                        rows[row["key"]] = row
                if closed_rids:
                    # not the stored id: 64 random hex characters per row are the costliest column to read,
                    # and the id is a hash of address, coin and open time (domain.ids), so it is recomputed
                    closed = self._dicts(
                        f"SELECT {fields.replace('id, ', '', 1)}, key, mid_px, premium, sz_decimals, max_leverage "
                        "FROM positions_closed WHERE rowid = ANY(?)",
                        [closed_rids],
                    )
                    ids = position_ids(pa.array([r["address"] for r in closed]), pa.array([r["coin"] for r in closed]),
                                       pa.array([r["open_time"] for r in closed], pa.int64())).to_pylist()  # fmt: skip
                    for row, position_id in zip(closed, ids, strict=True):
                        row["id"] = position_id
                        rows[row["key"]] = row
            finally:
                cur.execute("COMMIT")
        out = []
        for key, sort_key, _, _ in page:
            row = rows[key]
            if query.addresses is None or row["address"] in query.addresses:
                row["sort_key"] = sort_key
                out.append(row)
        return out

    def wallet_baselines(self, time: int) -> pa.Table:
        """Per wallet, its PnL and volume at its newest mark at or before `time`, or at its first mark when
        it has none by then (address, pnl, volume).

        Every wallet has a full mark each UTC day, so nothing older than two days before `time` is read.
        """
        sql = (
            "SELECT address, coalesce(arg_max(pnl, time) FILTER (WHERE time <= ?), arg_min(pnl, time)) AS pnl, "
            "coalesce(arg_max(volume, time) FILTER (WHERE time <= ?), arg_min(volume, time)) AS volume "
            "FROM wallet_marks WHERE time > ? GROUP BY address"
        )
        with self._errors():
            result: pa.Table = self._cursor().sql(sql, params=[time, time, time - 2 * DAY_MS]).to_arrow_table()
        return result

    # ------------------------------------------------------------ api keys of earlier builds

    def legacy_keys(self) -> list[dict[str, Any]]:
        """API keys that builds before the key file kept in this store (their hashes), for a one-time import."""
        exists = self._scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'api_keys'")
        return self._dicts("SELECT * FROM api_keys", []) if exists else []

    def close(self) -> None:
        with self._errors():
            self._con.close()


def open_store(path: Path | str, *, read_only: bool = False, memory_mib: int = 1024, threads: int = 2) -> DuckDBStore:
    return DuckDBStore(path, read_only=read_only, memory_mib=memory_mib, threads=threads)
