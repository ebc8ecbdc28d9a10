"""DuckDB connections: the process's one connection and its per-thread cursors, errors translated to ours
(here and nowhere else), and migrations."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

import duckdb
import pyarrow as pa

from hyperscope.errors import ConfigError, StoreFailed, StoreUnavailable
from hyperscope.store.base import (
    SCHEMA_VERSION,
    SERIES_TABLES,
    LatestUpdate,
)
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
        3: [
            "ALTER TABLE state_updates ADD COLUMN has_orders BOOLEAN DEFAULT false",
            *[f"ALTER TABLE positions_closed ADD COLUMN {c}" for c in CLOSED_MARKET_COLUMNS],
            *new_tables,
            *[
                s
                for t in ("lifecycles", "positions_closed")
                for s in (f"ALTER TABLE {t} ADD COLUMN wallet BIGINT", f"UPDATE {t} SET wallet = {WALLET_KEY}")
            ],
            "DROP VIEW positions_open",
            view,
        ],
        4: tables("funding_hourly"),  # the Coin Metrics-style funding series
        5: ["ALTER TABLE state_updates ADD COLUMN market_data VARCHAR DEFAULT ''"],  # where marks came from
        # the liquidation map at every update, and size cohorts in the hourly marks (the dashboard's history)
        6: [*tables("metrics_liquidation"), "ALTER TABLE wallet_marks ADD COLUMN IF NOT EXISTS size_segment SMALLINT"],
        7: [],  # schema 8 changed only PostgreSQL's open positions (their coin, opening time and wallet key)
        8: [],  # schema 9 too: PostgreSQL's open positions and profiles behind views of the published update
    }


class DuckConnection(SqlReads):
    """One DuckDB connection per process (reopened after a fatal error), a cursor per thread, DuckDB's
    exceptions translated to ours, and the schema migrated up to SCHEMA_VERSION."""

    path: str
    _open_args: dict[str, Any]
    _generation: int
    _invalid: str | None
    _reopen_lock: threading.Lock
    _con: duckdb.DuckDBPyConnection
    _local: threading.local
    _write_lock: threading.Lock
    fault_hook: Callable[[str], None] | None
    _next_ids: dict[str, int]
    _latest: LatestUpdate | None

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
                raise StoreUnavailable(
                    "the store hit a fatal error and is opened again; try again", detail=str(e)
                ) from e
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

    def _read_latest(self) -> LatestUpdate | None:
        rows = self._dicts("SELECT height, time, ingested_at FROM state_updates ORDER BY height DESC LIMIT 1", [])
        return LatestUpdate(**rows[0]) if rows else None

    def latest(self) -> LatestUpdate | None:
        return self._latest

    def set_meta(self, key: str, value: str) -> None:
        with self._write_lock, self._errors():
            con = self._connection()
            con.execute("DELETE FROM meta WHERE key = ?", [key])
            con.execute("INSERT INTO meta VALUES (?, ?)", [key, value])
