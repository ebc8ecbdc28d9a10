"""The DuckDB write path: one state update in one transaction (Arrow tables appended, closed lifecycles
moved, profiles upserted), and retention."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from hyperscope.store.base import (
    DAY_MS,
    LIFECYCLE_COLUMNS,
    SERIES_TABLES,
    STATE_COLUMNS,
    LatestUpdate,
    OrderWrite,
    Retention,
    WriteBatch,
    order_rows,
    ready,
    to_storage,
)
from hyperscope.store.duckdb.connection import WALLET_KEY, DuckConnection

log = logging.getLogger("hyperscope.store")
CHECKPOINT_WAL_BYTES = 16 * 2**20  # DuckDB's own default threshold, applied between updates instead
CHECKPOINT_WAL_CEILING = 512 * 2**20  # past this, a commit checkpoints itself (a writer that never idles)
NO_AUTOMATIC_CHECKPOINT = "1TB"


class DuckWriter(DuckConnection):
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
                # the wallets first: the ingestor tracks the lifecycles meanwhile
                self._upsert_wallets(con, ready(batch.wallets))
                self._stage("wallets")
                opened, closed = ready(batch.positions_opened), ready(batch.positions_closed)
                self._insert(con, "lifecycles", opened.select(LIFECYCLE_COLUMNS), WALLET_KEY)
                if closed.num_rows:
                    con.register("ended", closed.select(["key"]))
                    try:
                        con.execute("DELETE FROM lifecycles WHERE key IN (SELECT key FROM ended)")
                    finally:
                        con.unregister("ended")
                con.execute("DELETE FROM open_states")
                self._insert(con, "open_states", ready(batch.positions_open).select(STATE_COLUMNS))
                self._insert_closed(con, closed, batch.height)
                self._stage("positions")
                orders, marks = ready(batch.orders), ready(batch.marks)
                if orders is not None:
                    self._write_orders(con, orders, batch.height)
                if marks is not None and marks.num_rows:
                    stamped = marks.add_column(0, "time", pa.array(np.full(marks.num_rows, batch.time, np.int64)))
                    self._insert(con, "wallet_marks", stamped)
                if batch.funding is not None and batch.funding.num_rows:
                    self._insert(con, "funding_hourly", batch.funding)
                self._stage("orders")
                if batch.fills is not None and batch.fills.num_rows:
                    fills = batch.fills.add_column(
                        0, "height", pa.array([batch.height] * batch.fills.num_rows, pa.int64())
                    )
                    self._insert(con, "fills", fills)
                for table, rows in ready(batch.series).items():
                    m = rows.num_rows
                    rows = rows.add_column(0, "created_at", pa.array([batch.time] * m, pa.int64()))
                    rows = rows.add_column(0, "height", pa.array([batch.height] * m, pa.int64()))
                    rows = rows.add_column(0, "id", pa.array(range(next_ids[table], next_ids[table] + m), pa.int64()))
                    next_ids[table] += m
                    self._insert(con, table, rows)
                    self._stage(table)
                counts = ready(batch.counts)
                con.execute(
                    "INSERT INTO state_updates (height, time, source, positions, wallets, opened, closed, "
                    "liquidations, ingested_at, ingest_seconds, has_orders, market_data) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        batch.height,
                        batch.time,
                        batch.source,
                        counts["positions"],
                        counts["wallets"],
                        counts["opened"],
                        counts["closed"],
                        counts["liquidations"],
                        batch.ingested_at,
                        batch.ingest_seconds,
                        batch.has_orders,
                        batch.market_data,
                    ],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            self._next_ids = next_ids
            self._latest = LatestUpdate(batch.height, batch.time, batch.ingested_at)
            if self._wal_bytes() > CHECKPOINT_WAL_CEILING:  # nobody calls between_updates(): stay bounded
                con.execute("CHECKPOINT")

    def between_updates(self) -> None:
        """Checkpoint (fold the write-ahead log into the database file) once the log has grown past
        CHECKPOINT_WAL_BYTES: called in the idle time after an update is stored, so an update's commit never
        pays for one (DuckDB's own automatic checkpoint would run inside the commit that crossed its
        threshold). Readers keep reading meanwhile; the next update waits only if it arrives during one."""
        if self._wal_bytes() <= CHECKPOINT_WAL_BYTES:
            return
        with self._write_lock, self._errors():
            self._connection().execute("CHECKPOINT")

    def _wal_bytes(self) -> int:
        try:
            return Path(self.path + ".wal").stat().st_size
        except OSError:
            return 0

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
                            deleted[table] = self._count(
                                con.execute(
                                    f"DELETE FROM {table} WHERE height BETWEEN ? AND ? "
                                    "AND height IN (SELECT height FROM doomed)",
                                    [int(heights[0]), int(heights[-1])],
                                )
                            )
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
                deleted["order_spans"] = self._count(
                    con.execute(
                        "DELETE FROM order_spans WHERE span IN (SELECT span FROM order_ends WHERE last_time < ?)",
                        [gone],
                    )
                )
                deleted["order_ends"] = self._count(con.execute("DELETE FROM order_ends WHERE last_time < ?", [gone]))
                deleted["funding_hourly"] = self._count(
                    con.execute("DELETE FROM funding_hourly WHERE time < ?", [now - policy.funding])
                )
                deleted["wallet_marks"] = self._count(
                    con.execute(
                        "DELETE FROM wallet_marks WHERE time < ? OR (time < ? AND NOT full_mark)",
                        [now - policy.metrics - DAY_MS, now - 2 * DAY_MS],
                    )
                )
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
