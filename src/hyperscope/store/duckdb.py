"""The embedded DuckDB store: one file, one writer, MVCC readers.

One state update is written as one transaction: readers see all of it or none of it, and a process killed
mid-write leaves the file as it was before (DuckDB writes its WAL at commit). DuckDB exceptions are
translated to ours here and nowhere else.
"""

from __future__ import annotations

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
    HISTORY_FIELDS,
    HISTORY_SORT,
    MISSING_MARKET,
    SERIES_TABLES,
    HistoryQuery,
    LatestUpdate,
    OrderWrite,
    Retention,
    Series,
    WriteBatch,
    as_open_positions,
    to_storage,
)

_TRANSIENT = (duckdb.IOException, duckdb.OutOfMemoryException, duckdb.TransactionException, duckdb.InterruptException)
SCHEMA_VERSION = 5
DAY_MS = 86_400_000
LIFECYCLE_COLUMNS = ("key", "id", "address", "coin", "dex", "side", "leverage_type", "open_time", "created_at")
STATE_COLUMNS = (
    "key", "size", "entry_px", "mark_px", "value", "unrealized_pnl", "funding", "liquidation_px",
    "liquidation_progress", "leverage", "margin_used", "updated_at", "height", "size_segment", "pnl_segment",
    "size_bucket",
)  # fmt: skip


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
    }  # fmt: skip


class DuckDBStore:
    backend = "duckdb"

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

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cursor = cur
        return cur

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """DuckDB's exceptions as ours: what may work later (I/O, disk full, memory, a conflict) is
        StoreUnavailable; anything else means the store or this code is broken: StoreFailed."""
        try:
            yield
        except _TRANSIENT as e:
            raise StoreUnavailable(f"the store could not answer ({type(e).__name__}); try again", detail=str(e)) from e
        except duckdb.Error as e:
            raise StoreFailed(f"the store failed ({type(e).__name__})", detail=str(e)) from e

    def _scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        with self._errors():
            # fetchall, never fetchone: an unfinished result keeps the cursor's snapshot open, and an open
            # snapshot stops DuckDB from reclaiming the rows each state update deletes
            rows = self._cursor().execute(sql, params or []).fetchall()
        return rows[0][0] if rows else None

    def _dicts(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        with self._errors():
            cur = self._cursor().execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

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

    def get_meta(self, key: str) -> str | None:
        value = self._scalar("SELECT value FROM meta WHERE key = ?", [key])
        return str(value) if value is not None else None

    def set_meta(self, key: str, value: str) -> None:
        with self._write_lock, self._errors():
            self._con.execute("DELETE FROM meta WHERE key = ?", [key])
            self._con.execute("INSERT INTO meta VALUES (?, ?)", [key, value])

    def _read_latest(self) -> LatestUpdate | None:
        rows = self._dicts("SELECT height, time, ingested_at FROM state_updates ORDER BY height DESC LIMIT 1", [])
        return LatestUpdate(**rows[0]) if rows else None

    def latest(self) -> LatestUpdate | None:
        return self._latest

    def has_height(self, height: int) -> bool:
        return bool(self._scalar("SELECT count(*) FROM state_updates WHERE height = ?", [height]))

    def load_open_positions(self) -> pa.Table:
        with self._errors():
            table: pa.Table = self._cursor().sql("SELECT * EXCLUDE (wallet) FROM positions_open").to_arrow_table()
        return as_open_positions(table)

    def next_lifecycle_key(self) -> int:
        return int(
            self._scalar(
                "SELECT coalesce(max(k), 0) + 1 FROM (SELECT max(key) AS k FROM lifecycles "
                "UNION ALL SELECT max(key) AS k FROM positions_closed) AS keys"
            )
        )

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
            con = self._con
            if self.has_height(batch.height):
                return
            next_ids = dict(self._next_ids)
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(
                    "INSERT INTO state_updates (height, time, source, positions, wallets, opened, closed, "
                    "liquidations, ingested_at, ingest_seconds, has_orders) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [batch.height, batch.time, batch.source, batch.counts["positions"], batch.counts["wallets"],
                     batch.counts["opened"], batch.counts["closed"], batch.counts["liquidations"],
                     batch.ingested_at, batch.ingest_seconds, batch.orders is not None],
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
        if len(orders.ended) and orders.ended_height is not None:
            n = len(orders.ended)
            self._insert(con, "order_ends", pa.table({
                "span": pa.array(orders.ended, pa.int64()),
                "last_height": pa.array(np.full(n, orders.ended_height, np.int64)),
                "last_time": pa.array(np.full(n, orders.ended_time, np.int64)),
            }))  # fmt: skip
        opened = orders.opened
        if opened.num_rows:
            opened = opened.append_column("first_height", pa.array(np.full(opened.num_rows, height, np.int64)))
            self._insert(con, "order_spans", opened)

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
            con = self._con
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

    def series(
        self, series: Series, start: int, end: int, before: tuple[int, int] | None, limit: int
    ) -> list[dict[str, Any]]:
        """Rows of a metrics series in [start, end], newest first, strictly after the cursor `before`."""
        table, where = series.located()
        clauses = ["created_at >= ?", "created_at <= ?"] + [f"{c} = ?" for c in where]
        params: list[Any] = [start, end, *where.values()]
        if before is not None:
            clauses.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [before[0], before[0], before[1]]
        sql = f"SELECT * FROM {table} WHERE {' AND '.join(clauses)} ORDER BY created_at DESC, id DESC LIMIT ?"
        return self._dicts(sql, [*params, limit])

    def series_at(self, series: Series, height: int) -> list[dict[str, Any]]:
        """The series' rows (every matching series' row) of one state update."""
        table, where = series.located()
        clauses = ["height = ?"] + [f"{c} = ?" for c in where]
        return self._dicts(f"SELECT * FROM {table} WHERE {' AND '.join(clauses)}", [height, *where.values()])

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

    def series_peak(self, series: Series, field: str) -> dict[str, Any] | None:
        """The row of a series with the highest `field` (the earliest on ties)."""
        table, where = series.located()
        if not re.fullmatch(r"[a-z_]+", field):
            raise ValueError(field)
        clauses = " AND ".join(["true"] + [f"{c} = ?" for c in where])
        rows = self._dicts(f"SELECT * FROM {table} WHERE {clauses} ORDER BY {field} DESC, created_at, id LIMIT 1",
                           list(where.values()))  # fmt: skip
        return rows[0] if rows else None

    def market_at(self, coin: str, height: int) -> dict[str, Any] | None:
        """One market's row (mark, oracle, mid, funding, open interest, ...) at one state update."""
        rows = self._dicts("SELECT * FROM markets WHERE height = ? AND coin = ?", [height, coin])
        return rows[0] if rows else None

    def coins(self) -> list[dict[str, Any]]:
        return self._dicts("SELECT coin, coin_lower, dex, last_height FROM coins ORDER BY coin", [])

    def open_positions(self, coins: list[str]) -> pa.Table:
        """Open positions of the given coins joined with their wallet profiles (the CSV export's rows)."""
        sql = (
            "SELECT p.*, w.total_equity AS profile_total_equity, w.perp_equity AS profile_perp_equity, "
            "w.count_open_positions AS profile_count_open_positions, w.pnl AS profile_pnl, "
            "w.balance AS profile_balance, w.pnl_segment AS profile_pnl_segment, "
            "w.size_segment AS profile_size_segment FROM positions_open p JOIN wallets w ON w.address = p.address "
            "WHERE p.coin IN (SELECT unnest(?)) ORDER BY p.value DESC, p.id"
        )
        with self._errors():
            result: pa.Table = self._cursor().sql(sql, params=[list(coins)]).to_arrow_table()
        return result

    def position_history(self, query: HistoryQuery) -> list[dict[str, Any]]:
        """Open and closed lifecycles matching `query`, in its order, after its cursor, `limit` rows.

        A lifecycle matches the window when it was open at some moment of [start, end]. Closed ones carry
        the market fields of the state update that saw them close; open ones those of the newest update.

        The index plan: the first pass reads only the narrow columns that filter and sort (coin, the wallet
        key, times, the sort value and the lifecycle key) and keeps the page's keys and row ids; the second
        fetches the page's full rows by row id. Filtering by address scans the integer wallet key, never the
        address strings. Both passes run in one transaction, so they see the same rows.
        """
        sort = HISTORY_SORT[query.order_by]
        # an open lifecycle overlaps every window that ends after it opened; a closed one needs its close
        # time in or after the window (a bare column comparison, so the scan skips older row groups)
        where: list[str] = ["open_time <= ?"]
        params: list[Any] = [query.end]
        # constant IN lists (not = ANY(list)): DuckDB pushes those into the scan
        if query.coins is not None:
            where.append(f"coin IN ({', '.join('?' * len(query.coins))})")
            params += list(query.coins)
        if query.addresses is not None:  # the wallet key only; the full address is checked on the page's rows
            where.append(f"wallet IN ({', '.join('?' * len(query.addresses))})")
            params += [int(a[2:17], 16) for a in query.addresses]
        if query.segment is not None:
            where.append("(size_segment = ? OR pnl_segment = ?)")
            params += [query.segment, query.segment]
        if query.after is not None:
            op = "<" if query.descending else ">"
            where.append(f"({sort} {op} ? OR ({sort} = ? AND key {op} ?))")
            params += [query.after[0], query.after[0], query.after[1]]
        branches, branch_params = [], []
        condition = " AND ".join(where)
        if query.open is not False:
            branches.append(f"SELECT key, {sort} AS sort_key, false AS closed, NULL::BIGINT AS rid "
                            f"FROM positions_open WHERE {condition}")  # fmt: skip
            branch_params += params
        if query.open is not True:
            branches.append(f"SELECT key, {sort} AS sort_key, true AS closed, rowid AS rid "
                            f"FROM positions_closed WHERE close_time >= ? AND {condition}")  # fmt: skip
            branch_params += [query.start, *params]
        direction = "DESC" if query.descending else "ASC"
        page_sql = (f"SELECT * FROM ({' UNION ALL '.join(branches)}) AS t "
                    f"ORDER BY sort_key {direction}, key {direction} LIMIT ?")  # fmt: skip
        fields = ", ".join(HISTORY_FIELDS)
        with self._errors():
            cur = self._cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                page = cur.execute(page_sql, [*branch_params, query.limit]).fetchall()
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

    def _markets_at(self, height: int) -> dict[str, dict[str, Any]]:
        """coin -> the market fields /positions serves, at one state update (the last one asked is kept)."""
        cached = getattr(self._local, "markets", None)
        if cached is None or cached[0] != height:
            rows = self._dicts("SELECT coin, mid_px, premium, sz_decimals, max_leverage FROM markets WHERE height = ?",
                               [height])  # fmt: skip
            cached = (height, {r.pop("coin"): r for r in rows})
            self._local.markets = cached
        return cached[1]

    def past_height(self, time: int) -> int | None:
        """The newest state update at or before `time` whose metric rows are kept (the `past` rule)."""
        return self._scalar(
            "SELECT height FROM metrics_general WHERE created_at <= ? ORDER BY created_at DESC, id DESC LIMIT 1",
            [time],
        )

    def order_update(self, time: int) -> tuple[int, int] | None:
        """(height, time) of the newest state update at or before `time` that carried the open orders."""
        rows = self._dicts(
            "SELECT height, time FROM state_updates WHERE has_orders AND time <= ? ORDER BY height DESC LIMIT 1",
            [time],
        )
        return (rows[0]["height"], rows[0]["time"]) if rows else None

    def first_order_update(self, since: int) -> int | None:
        """Time of the oldest state update at or after `since` that carried the open orders."""
        return self._scalar("SELECT min(time) FROM state_updates WHERE has_orders AND time >= ?", [since])

    def orders_at(self, height: int, coins: list[str] | None = None) -> pa.Table:
        """Every order open at the state update `height` (optionally of some coins), by coin, side, price."""
        clauses = ["s.first_height <= ?", "(e.span IS NULL OR e.last_height >= ?)"]
        params: list[Any] = [height, height]
        if coins is not None:
            clauses.append("s.coin IN (SELECT unnest(?))")
            params.append(list(coins))
        sql = (
            "SELECT s.address, s.oid, s.coin, s.side, s.limit_px, s.sz, s.orig_sz, s.timestamp, s.order_type, s.tif, "
            "s.reduce_only, s.is_trigger, s.trigger_px, s.trigger_condition, s.is_position_tpsl, s.cloid "
            "FROM order_spans s LEFT JOIN order_ends e ON e.span = s.span "
            f"WHERE {' AND '.join(clauses)} ORDER BY s.coin, s.side, s.limit_px, s.oid"
        )
        with self._errors():
            result: pa.Table = self._cursor().sql(sql, params=params).to_arrow_table()
        return result

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

    def first_mark_time(self) -> int | None:
        return self._scalar("SELECT min(time) FROM wallet_marks")

    def wallets_with_exposure(self) -> pa.Table:
        """Every wallet's profile with its open value and open long value (the leaderboards' rows)."""
        sql = (
            "SELECT w.address, w.perp_equity, w.pnl, w.volume, coalesce(p.open_value, 0) AS open_value, "
            "coalesce(p.open_value_long, 0) AS open_value_long FROM wallets w LEFT JOIN (SELECT address, "
            "sum(value) AS open_value, sum(CASE WHEN side = 'long' THEN value ELSE 0 END) AS open_value_long "
            "FROM positions_open GROUP BY address) p ON p.address = w.address"
        )
        with self._errors():
            result: pa.Table = self._cursor().sql(sql).to_arrow_table()
        return result

    def funding_rows(self, coins: list[str], start: int, end: int, with_database_time: bool = False) -> pa.Table:
        """Hourly funding rows of the given coins in [start, end], by coin and time (time, coin, rate,
        open_interest_usd, and with `with_database_time` when the row was stored)."""
        extra = ", u.ingested_at AS database_time" if with_database_time else ""
        join = " JOIN state_updates u ON u.height = f.height" if with_database_time else ""
        sql = (
            f"SELECT f.time, f.coin, f.rate, f.open_interest_usd{extra} FROM funding_hourly f{join} "
            "WHERE f.coin IN (SELECT unnest(?)) AND f.time BETWEEN ? AND ? ORDER BY f.coin, f.time"
        )
        with self._errors():
            result: pa.Table = self._cursor().sql(sql, params=[list(coins), start, end]).to_arrow_table()
        return result

    def funding_coverage(self) -> dict[str, tuple[int, int]]:
        rows = self._dicts("SELECT coin, min(time) AS lo, max(time) AS hi FROM funding_hourly "
                           "WHERE open_interest_usd > 0 GROUP BY coin", [])  # fmt: skip
        return {r["coin"]: (r["lo"], r["hi"]) for r in rows}

    def status(self) -> dict[str, Any]:
        counts = {
            "state_updates": self._scalar("SELECT count(*) FROM state_updates"),
            "open_positions": self._scalar("SELECT count(*) FROM open_states"),
            "closed_positions": self._scalar("SELECT count(*) FROM positions_closed"),
            "wallets": self._scalar("SELECT count(*) FROM wallets"),
            "coins": self._scalar("SELECT count(*) FROM coins"),
        }
        first = self._dicts("SELECT height, time FROM state_updates ORDER BY height LIMIT 1", [])
        last = self._dicts(
            "SELECT height, time, ingested_at, ingest_seconds FROM state_updates ORDER BY height DESC LIMIT 1",
            [],
        )
        return {"backend": self.backend, "path": self.path, "counts": counts,
                "first": first[0] if first else None, "last": last[0] if last else None}  # fmt: skip

    def state_update_times(self, first_height: int, last_height: int) -> dict[int, int]:
        """height -> time of the stored state updates with heights in [first_height, last_height]."""
        rows = self._dicts(
            "SELECT height, time FROM state_updates WHERE height BETWEEN ? AND ? ORDER BY height",
            [first_height, last_height],
        )
        return {r["height"]: r["time"] for r in rows}

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
