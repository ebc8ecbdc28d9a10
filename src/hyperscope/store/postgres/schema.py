"""The PostgreSQL schema: schema.sql with the growing tables range-partitioned by day on their time column,
the read paths' indexes, migrations, and the daily partitions made ahead of each write and dropped by retention."""

from __future__ import annotations

import logging
import re
from importlib import resources
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa

from hyperscope.errors import ConfigError, StoreFailed, StoreUnavailable
from hyperscope.store.base import (
    DAY_MS,
    SCHEMA_VERSION,
    SERIES_TABLES,
    WriteBatch,
    to_storage,
)
from hyperscope.store.postgres.connection import PUBLISHED, WRITER_LOCK, PgConnections

log = logging.getLogger("hyperscope.store")

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
    # order, so a BRIN index of 8-page ranges (a few pages; the store's vacuum after each update summarizes
    # it) finds a key in 64 KB: an address's few open positions join their lifecycles that way
    "CREATE INDEX IF NOT EXISTS open_states_key ON open_states USING brin (key) WITH (pages_per_range = 8)",
    "CREATE INDEX IF NOT EXISTS positions_closed_key ON positions_closed (key)",
    "CREATE INDEX IF NOT EXISTS positions_closed_coin ON positions_closed (coin, close_time)",
    "CREATE INDEX IF NOT EXISTS positions_closed_wallet ON positions_closed (wallet)",
    # /positions pages walk these in their order and stop after a page (each branch sorts itself: history.py)
    "CREATE INDEX IF NOT EXISTS positions_closed_coin_open ON positions_closed (coin, open_time, key)",
    "CREATE INDEX IF NOT EXISTS positions_closed_coin_pnl ON positions_closed (coin, unrealized_pnl, key)",
    "CREATE INDEX IF NOT EXISTS positions_closed_pnl ON positions_closed (unrealized_pnl, key)",
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
    *(
        f"CREATE INDEX IF NOT EXISTS {t}_time ON {t} (created_at, id)"
        for t in ("metrics_general", "metrics_perp_volume", "metrics_wallets_equity")
    ),
    "CREATE INDEX IF NOT EXISTS metrics_coin_series ON metrics_coin (coin, created_at)",
    "CREATE INDEX IF NOT EXISTS metrics_coin_segment_series ON metrics_coin_segment "
    "(coin, segment_id, timeframe, created_at)",
    "CREATE INDEX IF NOT EXISTS metrics_coin_bucket_series ON metrics_coin_bucket (coin, size_bucket, created_at)",
    "CREATE INDEX IF NOT EXISTS metrics_segment_series ON metrics_segment (segment_id, timeframe, created_at)",
    "CREATE INDEX IF NOT EXISTS metrics_liquidation_coin ON metrics_liquidation (coin, height)",
    # every state update rewrites the open positions: vacuum them often, not at 20% dead rows
    "ALTER TABLE open_states SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 50000)",
    "ALTER TABLE lifecycles SET (autovacuum_vacuum_scale_factor = 0.05)",
    # every state update rewrites the profiles that changed (a third of them and more): no index to keep up,
    # joins by address hash the table
    "ALTER TABLE wallets SET (autovacuum_vacuum_scale_factor = 0.02)",
)

# Schema 8: PostgreSQL's open positions also carry their lifecycle's coin, opening time and wallet key, so that a
# /positions page filters and sorts the open ones without joining every open lifecycle; `open_rows` shows them
# with the columns of positions_closed (the lifecycle's own, fetched for the page's rows by key, are NULL here).
OPEN_STATE_FILTERS = (
    "ALTER TABLE open_states ADD COLUMN IF NOT EXISTS coin VARCHAR, ADD COLUMN IF NOT EXISTS open_time BIGINT, "
    "ADD COLUMN IF NOT EXISTS wallet BIGINT"
)
OPEN_ROWS_VIEW = (
    "CREATE OR REPLACE VIEW open_rows AS SELECT key, NULL::varchar AS id, NULL::varchar AS address, coin, "
    "NULL::varchar AS dex, NULL::varchar AS side, size, entry_px, mark_px, value, unrealized_pnl, funding, "
    "liquidation_px, liquidation_progress, NULL::varchar AS leverage_type, leverage, margin_used, open_time, "
    "NULL::bigint AS close_time, NULL::bigint AS created_at, updated_at, height, size_segment, pnl_segment, "
    "size_bucket, wallet FROM open_states"
)
# Built by a new database's first state update, after its rows (every position and order is new then): building
# them whole takes a fraction of inserting 195k lifecycles and 240k order spans into them one by one. Readers
# never wait for that (CREATE INDEX locks out writers only).
_FIRST_WRITE = {"lifecycles_coin", "lifecycles_wallet", "order_spans_span", "order_spans_first"}
FIRST_WRITE_INDEXES = tuple(s for s in INDEXES if s.split(" IF NOT EXISTS ")[-1].split(" ON ")[0] in _FIRST_WRITE)
# what open_rows leaves NULL: read from lifecycles for a page's open rows
LIFECYCLE_ONLY = ("id", "address", "dex", "side", "leverage_type", "created_at")

# Schema 9: the open positions and the wallet profiles are written on a second connection, in parallel with the
# rest of the update, and committed just before it. Readers see them through views of the published update (the
# newest row of state_updates), so the rows of an update whose own transaction has not committed yet (or never
# will) are never seen:
# - open_state_rows holds every update's open positions until the vacuum after the next update deletes the
#   older ones: open_states shows those of the published height;
# - recent_wallet_rows holds, per update (`gen`), the profiles that changed at it (most of them change at every
#   update: those of wallets holding positions, whose equity moves with every mark): written whole and deleted
#   like the open positions, so an update does not delete them row by row;
# - wallet_rows holds every other wallet's newest profile: those that stopped changing move there (written ahead
#   with the update's `gen`), and the update's own transaction deletes the rows of those that changed again.
# wallets shows both parts, each wallet in exactly one.
PUBLISHED_VIEWS = (
    "ALTER TABLE open_states RENAME TO open_state_rows",
    "ALTER TABLE wallets RENAME TO wallet_rows",
    "ALTER TABLE wallet_rows ADD COLUMN gen BIGINT NOT NULL DEFAULT 0",  # (no rewrite: every row is published)
    "CREATE TABLE recent_wallet_rows (LIKE wallet_rows)",
    "ALTER TABLE recent_wallet_rows SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 50000)",
    f"CREATE VIEW open_states AS SELECT * FROM open_state_rows WHERE height = {PUBLISHED}",
)


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


class PgSchema(PgConnections):
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
                later = set(FIRST_WRITE_INDEXES)
                for statement in (*_schema_statements(), OPEN_STATE_FILTERS, OPEN_ROWS_VIEW, *INDEXES):
                    if statement not in later:
                        con.execute(statement)  # type: ignore[call-overload]
                self._publish_views(con)
                con.execute("INSERT INTO meta VALUES ('schema_version', %s)", (str(SCHEMA_VERSION),))
            # later versions: their steps, version -> next, as the DuckDB store's _upgrades() does
            if 0 < version < SCHEMA_VERSION:
                if version < 5:
                    raise ConfigError(
                        f"database {self.path} has hyperscope schema version {version}, older than "
                        "this hyperscope migrates (5); ingest it again into a new database"
                    )
                con.execute("ALTER TABLE state_updates ADD COLUMN IF NOT EXISTS market_data VARCHAR DEFAULT ''")
                # 6 -> 7: the liquidation map at every update, size cohorts in the hourly marks
                for statement in _schema_statements():
                    if "TABLE IF NOT EXISTS metrics_liquidation (" in statement:
                        con.execute(statement)  # type: ignore[call-overload]
                con.execute("ALTER TABLE wallet_marks ADD COLUMN IF NOT EXISTS size_segment SMALLINT")
                new = (
                    "metrics_liquidation",
                    "positions_closed_coin_open",
                    "positions_closed_coin_pnl",
                    "positions_closed_pnl",
                )
                for statement in INDEXES:  # the new ones (on a large database this takes a while)
                    if any(name in statement for name in new):
                        con.execute(statement)  # type: ignore[call-overload]
                if version < 8:  # 7 -> 8: the open positions' coin, opening time and wallet key
                    con.execute(OPEN_STATE_FILTERS)
                    con.execute(
                        "UPDATE open_states s SET coin = l.coin, open_time = l.open_time, wallet = l.wallet "
                        "FROM lifecycles l WHERE l.key = s.key AND s.coin IS NULL"
                    )
                    con.execute(OPEN_ROWS_VIEW)
                    con.execute("DROP INDEX IF EXISTS open_states_key")  # its ranges were 128 pages
                    for statement in INDEXES:
                        if "open_states_key" in statement:
                            con.execute(statement)  # type: ignore[call-overload]
                # 8 -> 9: the open positions and profiles behind views of the published update (every stored
                # row is at or before it, and every open position's height is the newest: nothing to rewrite)
                self._publish_views(con)
                con.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    @staticmethod
    def _publish_views(con: psycopg.Connection[Any]) -> None:
        """Schema 9's tables and views; the views over open_states are made again, so that they read the view
        of the published update and not the renamed table."""
        (positions_open,) = [s for s in _schema_statements() if "VIEW positions_open" in s]
        for statement in (*PUBLISHED_VIEWS, positions_open, OPEN_ROWS_VIEW):
            con.execute(statement)  # type: ignore[call-overload]
        columns = ", ".join(
            name
            for (name,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = 'wallet_rows' AND column_name <> 'gen' ORDER BY ordinal_position"
            )
        )
        con.execute(
            f"CREATE VIEW wallets AS SELECT {columns} FROM recent_wallet_rows WHERE gen = {PUBLISHED} "  # type: ignore[call-overload]
            f"UNION ALL SELECT {columns} FROM wallet_rows WHERE gen <= {PUBLISHED}"
        )

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

    def _reconnected(self) -> None:
        super()._reconnected()
        self._partitions = self._known_partitions()

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

    def _ensure_partitions(self, wanted: dict[str, set[int]]) -> None:
        """The daily partitions of each table's days (and the day after the last, so that a write rarely
        waits for one), made before the state update's transaction. A new partition is created on its own and
        then attached, which locks the parent only against other schema changes, never against readers."""
        assert self._writer is not None
        con = self._writer
        for table, days in wanted.items():
            for day in sorted(days | {max(days) + 1}):
                if day in self._partitions[table]:
                    continue
                name = f"{table}_d{day}"
                with self._errors():
                    if self._parent_of(name) is None:
                        con.execute(f"CREATE TABLE IF NOT EXISTS {name} (LIKE {table} INCLUDING DEFAULTS)")  # type: ignore[call-overload]
                        with con.transaction():
                            con.execute("SET LOCAL lock_timeout = '10s'")
                            con.execute(
                                f"ALTER TABLE {table} ATTACH PARTITION {name} "  # type: ignore[call-overload]
                                f"FOR VALUES FROM ({day * DAY_MS}) TO ({(day + 1) * DAY_MS})"
                            )
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

    def _partitions_of(self, batch: WriteBatch) -> dict[str, set[int]]:
        """The days each partitioned table gets rows on at this state update: only the days its rows fall on,
        never every day between two far apart. From what the batch knows before its lifecycles and order spans
        are computed, so that the write starts without waiting for them."""

        def days(times: np.ndarray) -> set[int]:
            return set(np.unique(times // DAY_MS).tolist())

        today = {batch.time // DAY_MS}
        wanted = {t: today for t in (*SERIES_TABLES, "markets", "wallet_marks", "funding_hourly")}
        wanted["positions_closed"] = days(np.asarray(batch.close_times, np.int64))
        if batch.fills is not None and batch.fills.num_rows:
            wanted["fills"] = days(to_storage(batch.fills.select(["time"])).column(0).to_numpy())
        if batch.orders_ended_at is not None:
            wanted["order_ends"] = {batch.orders_ended_at // DAY_MS}
        return wanted

    @staticmethod
    def _close_times(closed: pa.Table) -> np.ndarray:
        return to_storage(closed.select(["close_time"])).column(0).to_numpy()

    def _check_partitions(self, table: str, times: np.ndarray) -> None:
        """Every row's day has its partition (made before the transaction): a bug otherwise, said plainly."""
        missing = sorted(set((times // DAY_MS).tolist()) - self._partitions[table])
        if missing:
            raise StoreFailed(
                f"the state update has {table} rows on a day without a partition",
                detail=f"days {missing[:5]} (the batch's bounds were wrong)",
            )

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
