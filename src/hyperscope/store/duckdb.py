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
import pyarrow as pa

from hyperscope.domain.state import TS
from hyperscope.errors import ConfigError, RetryLater
from hyperscope.store.base import SERIES_TABLES, LatestUpdate, WriteBatch

SCHEMA_VERSION = 2
LIFECYCLE_COLUMNS = ("key", "id", "address", "coin", "dex", "side", "leverage_type", "open_time", "created_at")
STATE_COLUMNS = (
    "key", "size", "entry_px", "mark_px", "value", "unrealized_pnl", "funding", "liquidation_px",
    "liquidation_progress", "leverage", "margin_used", "updated_at", "height", "size_segment", "pnl_segment",
    "size_bucket",
)  # fmt: skip


def _to_storage(table: pa.Table) -> pa.Table:
    """Timestamps become epoch-ms BIGINT; everything else passes through."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        columns.append(column.cast(pa.int64()) if pa.types.is_timestamp(field.type) else column)
    return pa.Table.from_arrays(columns, names=table.column_names)


class DuckDBStore:
    backend = "duckdb"

    def __init__(self, path: Path | str, *, read_only: bool = False) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(self.path, read_only=read_only)
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
        try:
            yield
        except duckdb.Error as e:
            raise RetryLater(f"store error: {e}") from e

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
            if version < SCHEMA_VERSION:
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
            table: pa.Table = self._cursor().sql("SELECT * FROM positions_open").to_arrow_table()
        columns = []
        for name in table.column_names:
            column = table.column(name)
            if name in ("open_time", "close_time", "created_at", "updated_at"):
                column = column.cast(TS)
            elif name in ("size_segment", "pnl_segment", "size_bucket"):
                column = column.cast(pa.int8())
            columns.append(column)
        return pa.Table.from_arrays(columns, names=table.column_names)

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

    def _insert(self, con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        view = f"incoming_{table}"
        con.register(view, _to_storage(rows))
        try:
            cols = ", ".join(rows.column_names)
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {view}")
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
                    "INSERT INTO state_updates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [batch.height, batch.time, batch.source, batch.counts["positions"], batch.counts["wallets"],
                     batch.counts["opened"], batch.counts["closed"], batch.counts["liquidations"],
                     batch.ingested_at, batch.ingest_seconds],
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
                self._insert(con, "lifecycles", batch.positions_opened.select(LIFECYCLE_COLUMNS))
                if batch.positions_closed.num_rows:
                    con.register("ended", batch.positions_closed.select(["key"]))
                    try:
                        con.execute("DELETE FROM lifecycles WHERE key IN (SELECT key FROM ended)")
                    finally:
                        con.unregister("ended")
                con.execute("DELETE FROM open_states")
                self._insert(con, "open_states", batch.positions_open.select(STATE_COLUMNS))
                self._insert(con, "positions_closed", batch.positions_closed)
                self._stage("positions")
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

    def _upsert_wallets(self, con: duckdb.DuckDBPyConnection, wallets: pa.Table) -> None:
        """Replace the profiles of the given wallets; every other wallet keeps its last known profile."""
        if wallets.num_rows == 0:
            return
        con.register("incoming_wallets", _to_storage(wallets))
        try:
            cols = ", ".join(wallets.column_names)
            con.execute("DELETE FROM wallets WHERE address IN (SELECT address FROM incoming_wallets)")
            con.execute(f"INSERT INTO wallets ({cols}) SELECT {cols} FROM incoming_wallets")
        finally:
            con.unregister("incoming_wallets")

    # ------------------------------------------------------------ reads for the service

    def series(
        self,
        table: str,
        where: dict[str, Any],
        start: int,
        end: int,
        before: tuple[int, int] | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Rows of a metrics series in [start, end], newest first, strictly after the cursor `before`."""
        if table not in SERIES_TABLES:
            raise ValueError(table)
        clauses = ["created_at >= ?", "created_at <= ?"]
        params: list[Any] = [start, end]
        for column, value in where.items():
            clauses.append(f"{column} = ?")
            params.append(value)
        if before is not None:
            clauses.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [before[0], before[0], before[1]]
        sql = f"SELECT * FROM {table} WHERE {' AND '.join(clauses)} ORDER BY created_at DESC, id DESC LIMIT ?"
        return self._dicts(sql, [*params, limit])

    def rows_at(self, table: str, where: dict[str, Any], height: int) -> list[dict[str, Any]]:
        clauses = ["height = ?"] + [f"{c} = ?" for c in where]
        return self._dicts(f"SELECT * FROM {table} WHERE {' AND '.join(clauses)}", [height, *where.values()])

    def sampled_series(
        self, table: str, where: dict[str, Any], start: int, end: int, step_ms: int
    ) -> list[dict[str, Any]]:
        """The last row at or before each multiple of `step_ms` in [start, end], newest first."""
        clauses = ["created_at >= ?", "created_at <= ?"] + [f"{c} = ?" for c in where]
        sql = (
            f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY created_at // ? ORDER BY created_at DESC, "
            f"id DESC) AS rn FROM {table} WHERE {' AND '.join(clauses)}) AS t WHERE rn = 1 "
            "ORDER BY created_at DESC, id DESC"
        )
        rows = self._dicts(sql, [step_ms, start, end, *where.values()])
        for row in rows:
            row.pop("rn", None)
        return rows

    def coins(self) -> list[dict[str, Any]]:
        return self._dicts("SELECT coin, coin_lower, dex, last_height FROM coins ORDER BY coin", [])

    def open_positions(self, coin: str) -> pa.Table:
        """Open positions of one coin joined with their wallet profiles (the CSV export's rows)."""
        sql = (
            "SELECT p.*, w.total_equity AS profile_total_equity, w.perp_equity AS profile_perp_equity, "
            "w.count_open_positions AS profile_count_open_positions, w.pnl AS profile_pnl, "
            "w.balance AS profile_balance, w.pnl_segment AS profile_pnl_segment, "
            "w.size_segment AS profile_size_segment FROM positions_open p JOIN wallets w ON w.address = p.address "
            "WHERE p.coin = ? ORDER BY p.value DESC, p.id"
        )
        with self._errors():
            result: pa.Table = self._cursor().sql(sql, params=[coin]).to_arrow_table()
        return result

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

    def state_update_times(self, start: int, end: int) -> list[dict[str, Any]]:
        return self._dicts(
            "SELECT height, time FROM state_updates WHERE time >= ? AND time <= ? ORDER BY time DESC",
            [start, end],
        )

    # ------------------------------------------------------------ api keys

    def insert_key(self, row: dict[str, Any]) -> None:
        with self._write_lock, self._errors():
            self._con.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    row["key_id"],
                    row["name"],
                    row["hash"],
                    row["scopes"],
                    row["rate_limit"],
                    row["created_at"],
                    None,
                ],
            )

    def list_keys(self) -> list[dict[str, Any]]:
        return self._dicts("SELECT * FROM api_keys ORDER BY created_at, key_id", [])

    def revoke_key(self, key_id: str, when: int) -> bool:
        with self._write_lock, self._errors():
            row = self._con.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL RETURNING key_id",
                [when, key_id],
            ).fetchall()
        return bool(row)

    def close(self) -> None:
        with self._errors():
            self._con.close()


def open_store(path: Path | str, *, read_only: bool = False) -> DuckDBStore:
    return DuckDBStore(path, read_only=read_only)
