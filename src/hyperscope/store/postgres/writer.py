"""The PostgreSQL write path: one state update in two transactions on two connections, committed in turn and
published by the second (schema 9's views), its rows encoded for binary COPY on worker threads while earlier
statements run; retention by whole partitions where it can."""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from hyperscope.domain.ids import wallet_keys
from hyperscope.store.base import (
    DAY_MS,
    LIFECYCLE_COLUMNS,
    SERIES_TABLES,
    STATE_COLUMNS,
    LatestUpdate,
    Retention,
    WriteBatch,
    order_rows,
    ready,
    to_storage,
)
from hyperscope.store.postgres import copy as pgcopy
from hyperscope.store.postgres.connection import NOTIFY_CHANNEL, PUBLISHED
from hyperscope.store.postgres.schema import FIRST_WRITE_INDEXES, PgSchema

log = logging.getLogger("hyperscope.store")


@dataclass(frozen=True)
class WalletSplit:
    """An update's profiles as schema 9 stores them."""

    recent: pa.Table  # the profiles that changed (recent_wallet_rows)
    settled: pa.Table  # the published recent profiles that did not change again: they move to wallet_rows
    replaced: pa.Table  # addresses whose row in wallet_rows goes (they changed)


class Payload:
    """A table's binary COPY payload, encoded slice by slice on an encoder thread and written as each slice is
    ready: the server takes the first rows while the later ones are still being encoded. Whatever the encoding
    raised (the ingestor's own errors included) is raised where the payload is written."""

    SLICE = 50_000  # rows encoded at a time
    _END = object()

    def __init__(self) -> None:
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._head: Any = self._END  # the first item: the column names, or None for no rows

    def produce(self, rows: Callable[[], pa.Table | None], types: dict[str, str]) -> None:
        """Encode `rows()` (on an encoder thread): its column names first, then its slices."""
        try:
            made = rows()
            if made is None or made.num_rows == 0:
                self._items.put(None)
                return
            made = to_storage(made)
            kinds = [types[c] for c in made.column_names]
            self._items.put(made.column_names)
            for start in range(0, made.num_rows, self.SLICE):
                self._items.put(pgcopy.encode_rows(made.slice(start, self.SLICE), kinds))
            self._items.put(self._END)
        except BaseException as e:  # noqa: BLE001 - handed to the writing thread, which raises it
            self._items.put(e)

    def _next(self) -> Any:
        item = self._items.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def columns(self) -> list[str] | None:
        """The payload's column names (None: no rows), once its table is computed."""
        if self._head is self._END:
            self._head = self._next()
        return self._head  # type: ignore[no-any-return]

    def write(self, cur: psycopg.Cursor[Any], table: str) -> None:
        """COPY the rows into `table`, each slice as soon as it is encoded."""
        columns = self.columns()
        if columns is None:
            return
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:  # type: ignore[call-overload]
            copy.write(pgcopy.HEADER)
            while (pieces := self._next()) is not self._END:
                for piece in pieces:
                    copy.write(piece)
            copy.write(pgcopy.TRAILER)


class PgWriter(PgSchema):
    def _stage(self, name: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(name)

    def _copy(
        self, cur: psycopg.Cursor[Any], table: str, rows: pa.Table | Payload, types: dict[str, str] | None = None
    ) -> None:
        """Append rows with binary COPY, cast to the table's own column types; `rows` may be a payload being
        encoded in the background (no rows: nothing)."""
        if isinstance(rows, pa.Table):
            table_rows = rows
            rows = Payload()
            rows.produce(lambda: table_rows, types or self._types[table])
        rows.write(cur, table)

    def between_updates(self) -> None:
        """Nothing: PostgreSQL checkpoints and vacuums on its own schedule, outside any update."""

    def write_update(self, batch: WriteBatch) -> None:
        """Write one state update (a no-op for a height already stored): its open positions and changed
        profiles on a second connection, in parallel with the rest, in a transaction committed just before the
        update's own; readers see them once the update's row in state_updates is committed (schema 9's views)."""
        with self._write_lock:
            con = self._live_writer()
            self._ensure_partitions(self._partitions_of(batch))
            recent = self._recent if self._recent is not None else self._load_recent()
            self._recent = None  # known again once this update commits
            # every sizeable payload is encoded on other threads (numpy lets go of the GIL), in the order the
            # transactions stream them, while they stream the earlier ones and the server works
            split = self._encoder.submit(self._split_wallets, batch, recent)
            pending = self._payloads(batch, split)
            ahead: Future[None] | None = None
            try:
                with self._errors(), con.transaction():
                    cur = con.cursor()
                    # the changed wallets' hash join fits in memory (4 MB spills it to disk at 150k wallets)
                    cur.execute("SET LOCAL work_mem = '64MB'")
                    if cur.execute("SELECT 1 FROM state_updates WHERE height = %s", (batch.height,)).fetchone():
                        # stored already: a commit whose answer the connection lost before it reached us
                        self._latest = LatestUpdate(batch.height, batch.time, batch.ingested_at)
                        return
                    ahead = self._ahead.submit(self._write_ahead, batch, pending)
                    self._write(cur, batch, pending, ahead)
                    cur.execute(
                        "SELECT pg_notify(%s, %s)",
                        (NOTIFY_CHANNEL, f"{batch.height},{batch.time},{batch.ingested_at}"),
                    )
                self._unpublished = False
                self._recent = split.result().recent
            finally:
                if ahead is not None:
                    wait([ahead])  # never outliving a failed write: its rows stay unseen, cleared by the next
            self._latest = LatestUpdate(batch.height, batch.time, batch.ingested_at)
            self._vacuum.set()

    def _write_ahead(self, batch: WriteBatch, pending: dict[str, Payload]) -> None:
        """The update's open positions, its changed profiles and the recent ones that settle, in a transaction
        of their own on the second connection, committed before the update's (which waits for it). What an
        update that never committed left behind goes first: the open positions and recent profiles of any
        update but the published one, and the settled profiles written after it."""
        con = self._live_ahead()
        with self._errors(), con.transaction():
            cur = con.cursor()
            # durable once the update's own commit is: it comes later in the same log, and waits for it
            cur.execute("SET LOCAL synchronous_commit = off")
            published = self._latest.height if self._latest else None
            if self._unpublished or self._swept != published:  # else the vacuum after it swept already
                with self._sweeping:  # never the vacuum's delete of the same rows at the same time
                    cur.execute(f"DELETE FROM open_state_rows WHERE height IS DISTINCT FROM {PUBLISHED}")
                    cur.execute(f"DELETE FROM recent_wallet_rows WHERE gen IS DISTINCT FROM {PUBLISHED}")
            if self._unpublished:
                cur.execute(f"DELETE FROM wallet_rows WHERE gen > coalesce({PUBLISHED}, -1)")
            self._unpublished = True
            self._copy(cur, "recent_wallet_rows", pending["recent_wallet_rows"])
            self._copy(cur, "wallet_rows", pending["wallet_rows"])
            self._copy(cur, "open_state_rows", pending["open_state_rows"])
            self._stage("ahead")

    def _load_recent(self) -> pa.Table:
        """The published update's recent profiles (read after a start or a failed write)."""
        columns = ", ".join(c for c in self._types["recent_wallet_rows"] if c != "gen")
        return self._arrow(f"SELECT {columns} FROM recent_wallet_rows WHERE gen = {PUBLISHED}")

    @staticmethod
    def _split_wallets(batch: WriteBatch, previous: pa.Table) -> WalletSplit:
        """Where an update's profiles go, given the published update's recent ones (`previous`): the changed
        ones are the update's recent part, the previous recent ones that did not change again settle."""
        changed = to_storage(ready(batch.wallets))
        addresses = changed.column("address")
        settled = previous.filter(pc.invert(pc.is_in(previous.column("address"), value_set=addresses)))
        was_recent = pc.is_in(addresses, value_set=previous.column("address"))
        return WalletSplit(
            recent=changed,
            settled=settled.cast(changed.schema),
            replaced=changed.select(["address"]).filter(pc.invert(was_recent)),
        )

    def _live_ahead(self) -> psycopg.Connection[Any]:
        """The second writing connection (made anew once it broke). Only the writer, holding the writer lock,
        uses it."""
        if self._ahead_con is None or self._ahead_con.closed or self._ahead_con.broken:
            if self._ahead_con is not None:
                self._ahead_con.close()
            self._ahead_con = self._connect(autocommit=True, name="ingest-ahead")
        return self._ahead_con

    def _write(
        self, cur: psycopg.Cursor[Any], batch: WriteBatch, pending: dict[str, Payload], ahead: Future[None]
    ) -> None:
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
        # the profiles in wallet_rows that changed go (their new ones are recent): addresses staged, one hash
        # join (none when nothing is published yet)
        if self._latest is not None and pending["changed_wallets"].columns() is not None:
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS changed_wallets (address VARCHAR) ON COMMIT DELETE ROWS")
            self._copy(cur, "changed_wallets", pending["changed_wallets"])
            # a temporary table has no statistics; rather than ANALYZE it (40 ms at 150k rows), the planner is
            # told to hash it, for this transaction only
            cur.execute("SET LOCAL enable_nestloop = off")
            cur.execute("SET LOCAL enable_mergejoin = off")
            # the published profiles they replace (those written ahead are newer: never theirs to touch)
            cur.execute(
                f"DELETE FROM wallet_rows w USING changed_wallets c WHERE w.address = c.address "
                f"AND w.gen <= {PUBLISHED}"
            )
            cur.execute("RESET enable_nestloop")
            cur.execute("RESET enable_mergejoin")
        self._stage("wallets")
        self._copy(cur, "lifecycles", pending["lifecycles"])
        closed = ready(batch.positions_closed)
        if closed.num_rows:
            self._check_partitions("positions_closed", self._close_times(closed))
            cur.execute("DELETE FROM lifecycles WHERE key = ANY(%s)", (closed.column("key").to_numpy().tolist(),))
        self._stage("lifecycles")
        self._copy(cur, "positions_closed", pending["positions_closed"])
        self._stage("positions")
        orders = ready(batch.orders)
        if orders is not None and len(orders.ended) and orders.ended_time is not None:
            self._check_partitions("order_ends", np.array([orders.ended_time], np.int64))
        for table in ("order_ends", "order_spans", "wallet_marks", "funding_hourly"):
            self._copy(cur, table, pending[table])
        self._stage("orders")
        self._copy(cur, "fills", pending["fills"])
        for table, rows in ready(batch.series).items():
            m = rows.num_rows
            first = self._next_id(cur, table, m)
            rows = rows.add_column(0, "created_at", pa.array(np.full(m, batch.time, np.int64)))
            rows = rows.add_column(0, "height", pa.array(np.full(m, batch.height, np.int64)))
            rows = rows.add_column(0, "id", pa.array(np.arange(first, first + m, dtype=np.int64)))
            self._copy(cur, table, rows)
            self._stage(table)
        if self._latest is None:  # a new database's first update: the indexes it left to now (built whole)
            for statement in FIRST_WRITE_INDEXES:
                cur.execute(statement)  # type: ignore[call-overload]
        ahead.result()  # committed: the update's row, committed next, publishes them
        self._stage("ahead_committed")
        c = ready(batch.counts)
        cur.execute(
            "INSERT INTO state_updates (height, time, source, positions, wallets, opened, closed, liquidations, "
            "ingested_at, ingest_seconds, has_orders, market_data) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                batch.height,
                batch.time,
                batch.source,
                c["positions"],
                c["wallets"],
                c["opened"],
                c["closed"],
                c["liquidations"],
                batch.ingested_at,
                batch.ingest_seconds,
                batch.has_orders,
                batch.market_data,
            ),
        )

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

    def _payloads(self, batch: WriteBatch, split: Future[WalletSplit]) -> dict[str, Payload]:
        """The COPY payloads of a state update's sizeable tables, each encoded on the encoder threads (in the
        order the write streams them; a table without rows has None). A table the ingestor is still computing
        is waited for there, not here."""

        def generation(rows: pa.Table) -> pa.Table:
            return rows.append_column("gen", pa.array(np.full(rows.num_rows, batch.height, np.int64)))

        def lifecycles() -> pa.Table:
            opened = ready(batch.positions_opened).select(LIFECYCLE_COLUMNS)
            return opened.append_column("wallet", pa.array(wallet_keys(opened.column("address"))))

        def open_states() -> pa.Table:  # with their lifecycle's coin, opening time and wallet key (schema 8)
            positions = ready(batch.positions_open)
            states = positions.select([*STATE_COLUMNS, "coin", "open_time"])
            states = states.append_column("wallet", pa.array(wallet_keys(positions.column("address"))))
            return states.take(pc.sort_indices(states.column("key")))

        def positions_closed() -> pa.Table | None:
            closed = ready(batch.positions_closed)
            if not closed.num_rows:
                return None
            fields = batch.markets.select(["coin", "mid_px", "premium", "sz_decimals", "max_leverage"])
            closed = closed.join(fields, "coin", join_type="left outer")
            return closed.append_column("wallet", pa.array(wallet_keys(closed.column("address"))))

        def order_table(which: int) -> pa.Table | None:
            orders = ready(batch.orders)
            return None if orders is None else order_rows(orders, batch.height)[which]

        def wallet_marks() -> pa.Table | None:
            marks = ready(batch.marks)
            if marks is None:
                return None
            return marks.add_column(0, "time", pa.array(np.full(marks.num_rows, batch.time, np.int64)))

        def fills() -> pa.Table | None:
            if batch.fills is None:
                return None
            n = batch.fills.num_rows
            return batch.fills.add_column(0, "height", pa.array(np.full(n, batch.height, np.int64)))

        tables: dict[str, Callable[[], pa.Table | None]] = {
            "changed_wallets": lambda: split.result().replaced,
            "recent_wallet_rows": lambda: generation(split.result().recent),
            "wallet_rows": lambda: generation(split.result().settled),
            "open_state_rows": open_states,
            "lifecycles": lifecycles,
            "positions_closed": positions_closed,
            "order_ends": lambda: order_table(0),
            "order_spans": lambda: order_table(1),
            "wallet_marks": wallet_marks,
            "funding_hourly": lambda: batch.funding,
            "fills": fills,
        }
        types = {**self._types, "changed_wallets": {"address": "character varying"}}
        payloads = {}
        for table, rows in tables.items():
            payloads[table] = Payload()
            self._encoder.submit(payloads[table].produce, rows, types[table])
        return payloads

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
                doomed = [
                    h
                    for (h,) in cur.execute(
                        "SELECT height FROM (SELECT height, time, row_number() OVER (PARTITION BY time / %s "
                        "ORDER BY time DESC, height DESC) AS rn FROM state_updates "
                        "WHERE time < %s AND NOT thinned) AS t "
                        "WHERE rn > 1 UNION SELECT height FROM state_updates WHERE time < %s",
                        (policy.thin_every, cut, expired),
                    ).fetchall()
                    if h != newest
                ]
                if doomed:
                    for table in (*SERIES_TABLES, "markets"):
                        deleted[table] = cur.execute(f"DELETE FROM {table} WHERE height = ANY(%s)", (doomed,)).rowcount  # type: ignore[call-overload]
                cur.execute("UPDATE state_updates SET thinned = true WHERE time < %s AND NOT thinned", (cut,))
                steps = {
                    "state_updates": ("DELETE FROM state_updates WHERE time < %s AND height <> %s", (expired, newest)),
                    "positions_closed": (
                        "DELETE FROM positions_closed WHERE close_time < %s",
                        (now - policy.positions,),
                    ),
                    "fills": ("DELETE FROM fills WHERE time < %s", (now - policy.fills,)),
                    "order_spans": (
                        "DELETE FROM order_spans WHERE span IN (SELECT span FROM order_ends WHERE last_time < %s)",
                        (now - policy.orders,),
                    ),
                    "order_ends": ("DELETE FROM order_ends WHERE last_time < %s", (now - policy.orders,)),
                    "funding_hourly": ("DELETE FROM funding_hourly WHERE time < %s", (now - policy.funding,)),
                    "wallet_marks": (
                        "DELETE FROM wallet_marks WHERE time < %s OR (time < %s AND NOT full_mark)",
                        (now - policy.metrics - DAY_MS, now - 2 * DAY_MS),
                    ),
                }
                for name, (sql, params) in steps.items():
                    deleted[name] = cur.execute(sql, params).rowcount  # type: ignore[call-overload]
        return deleted
