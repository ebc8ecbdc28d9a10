"""The embedded DuckDB store: one file, one writer, MVCC readers.

One state update is written as one transaction: readers see all of it or none of it, and a process killed
mid-write leaves the file as it was before (DuckDB writes its WAL at commit). DuckDB exceptions are
translated to ours here and nowhere else.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from hyperscope.domain.ids import position_ids
from hyperscope.errors import ConfigError
from hyperscope.store.base import (
    DAY_MS,
    HISTORY_FIELDS,
    MISSING_MARKET,
    SERIES_TABLES,
    HistoryQuery,
    Series,
    as_open_positions,
)
from hyperscope.store.duckdb.writer import NO_AUTOMATIC_CHECKPOINT, DuckWriter
from hyperscope.store.history import DUCKDB, history_page

log = logging.getLogger("hyperscope.store")


class DuckDBStore(DuckWriter):
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
        if not read_only:  # never a checkpoint inside an update's commit: between_updates() makes them
            config["checkpoint_threshold"] = NO_AUTOMATIC_CHECKPOINT
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

    def load_open_positions(self) -> pa.Table:
        with self._errors():
            table: pa.Table = (
                self._cursor().sql("SELECT * EXCLUDE (wallet) FROM positions_open ORDER BY key").to_arrow_table()
            )
        return as_open_positions(table)

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
                    ids = position_ids(
                        pa.array([r["address"] for r in closed]),
                        pa.array([r["coin"] for r in closed]),
                        pa.array([r["open_time"] for r in closed], pa.int64()),
                    ).to_pylist()
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
        it has none by then (address, pnl, volume, size_segment: null in marks made before it was kept).

        Every wallet has a full mark each UTC day, so nothing older than two days before `time` is read.
        """
        sql = (
            "SELECT address, coalesce(arg_max(pnl, time) FILTER (WHERE time <= ?), arg_min(pnl, time)) AS pnl, "
            "coalesce(arg_max(volume, time) FILTER (WHERE time <= ?), arg_min(volume, time)) AS volume, "
            "coalesce(arg_max(size_segment, time) FILTER (WHERE time <= ?), arg_min(size_segment, time)) "
            "AS size_segment FROM wallet_marks WHERE time > ? GROUP BY address"
        )
        with self._errors():
            params = [time, time, time, time - 2 * DAY_MS]
            result: pa.Table = self._cursor().sql(sql, params=params).to_arrow_table()
        return result

    def legacy_keys(self) -> list[dict[str, Any]]:
        """API keys that builds before the key file kept in this store (their hashes), for a one-time import."""
        exists = self._scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'api_keys'")
        return self._dicts("SELECT * FROM api_keys", []) if exists else []

    def close(self) -> None:
        with self._errors():
            self._con.close()


def open_store(path: Path | str, *, read_only: bool = False, memory_mib: int = 1024, threads: int = 2) -> DuckDBStore:
    return DuckDBStore(path, read_only=read_only, memory_mib=memory_mib, threads=threads)
