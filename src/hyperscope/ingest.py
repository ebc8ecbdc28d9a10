"""One state update through tracking -> metrics -> store, as one transaction.

A state update that breaks the contract is rejected whole with a logged reason and nothing of it is stored.
Ingesting a height that is already stored is a no-op; a height older than the newest stored one is rejected
(lifecycles only move forward).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hyperscope import metrics
from hyperscope.domain.state import StateUpdate, validate
from hyperscope.domain.time import DAY_MS, HOUR_MS
from hyperscope.domain.timefmt import now_ms
from hyperscope.errors import HyperscopeError, InvalidStateUpdate
from hyperscope.store.base import OrderWrite, Retention, Store, WriteBatch
from hyperscope.tracking import Tracked, build_profiles, changed_rows, track
from hyperscope.tracking.lifecycle import possible_close_times
from hyperscope.tracking.orders import order_changes
from hyperscope.tracking.profiles import index_of

log = logging.getLogger("hyperscope.ingest")

RETENTION_EVERY_MS = 60_000  # state-update time between two retention passes


@dataclass
class IngestResult:
    height: int
    skipped: bool = False
    positions: int = 0
    opened: int = 0
    closed: int = 0
    liquidations: int = 0
    # per stage: validate, tracking and metrics (on the worker thread, during the store's write), store (from
    # the start of the write to the commit, any wait for the worker included), retention (when it ran)
    seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0  # wall time of the whole update (the stages overlap, so not their sum)


class Ingestor:
    """Feeds state updates into a store, keeping the previous open positions in memory between updates."""

    def __init__(self, store: Store, retention: Retention | None = None) -> None:
        self.store = store
        self.retention = retention
        self._retention_at: int | None = None
        self._open: pa.Table | None = None
        self._open_keys: pa.Array | None = None
        self._open_height: int | None = None
        self._next_key: int | None = None
        self._profiles: pa.Table | None = None
        self._order_keys: np.ndarray | None = None  # span keys of the open orders (None: load from the store)
        self._orders_at: tuple[int, int] | None = None  # (height, time) of the newest update with orders
        self._marked: pa.Table | None = None  # the wallets' (address, pnl, volume) at their last mark
        self._pending_order_keys: np.ndarray | None = None
        self._pending_marked: pa.Table | None = None
        self._groups: dict[str, pa.Table] | None = None  # the groups holding positions at the newest update
        self.listeners: list = []  # called with IngestResult after every stored update
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="hyperscope-ingest")
        self._beside = ThreadPoolExecutor(1, thread_name_prefix="hyperscope-beside")  # order spans, marks

    def ingest(self, update: StateUpdate) -> IngestResult:
        t0 = time.perf_counter()
        latest = self.store.latest()
        if latest is not None and update.height <= latest.height:
            if self.store.has_height(update.height):
                return IngestResult(update.height, skipped=True)
            raise self._reject(update, f"height {update.height} is older than the newest stored {latest.height}")
        if latest is not None and update.time <= latest.time:
            raise self._reject(update, f"time {update.time} is not after the newest stored {latest.time}")
        try:
            checked = validate(update)
        except InvalidStateUpdate as e:
            raise self._reject(update, e.message) from e
        t1 = time.perf_counter()
        previous = self._previous_open(latest.height if latest else None)
        continuing = previous is self._open
        if self._next_key is None or not continuing:
            self._next_key = self.store.next_lifecycle_key()
        keys = self._open_keys if continuing else None
        if self._groups is None and latest is not None:
            self._groups = self.store.metric_groups(latest.height, metrics.GROUP_KEYS)
        if checked.orders is not None and self._order_keys is None:
            self._order_keys, self._orders_at = self.store.open_order_spans()
        wallet_index = checked.wallet_index
        if wallet_index is None:
            wallet_index = index_of(checked.positions.column("address"), checked.wallets.column("address"))
        profiles = build_profiles(checked, wallet_index)
        # The store starts writing now, the wallet profiles first. Everything else is computed meanwhile on two
        # worker threads (the database and numpy both let go of the GIL), each in the order the writer takes it:
        # the changed profiles, the lifecycles, then the metrics, whose rows the writer takes last, on one; the
        # order spans and hourly marks beside them on the other. An error in any of them is raised in the
        # write, which rolls back.
        work = self._worker
        previous_time = latest.time if latest else None
        wallets = work.submit(self._changed_profiles, profiles, continuing)
        tracking = work.submit(_track, checked, previous, self._next_key, keys, profiles)
        orders = self._beside.submit(self._order_write, checked)
        marks = self._beside.submit(self._marks, profiles, checked.time, previous_time)
        computed = work.submit(_metrics, checked, tracking, self._groups)
        liquidations = 0
        if checked.fills is not None and checked.fills.num_rows:
            liquidations = int(checked.fills.column("liquidation").to_numpy(zero_copy_only=False).sum())
        t2 = time.perf_counter()
        batch = WriteBatch(
            height=checked.height,
            time=checked.time,
            source=checked.source,
            market_data=checked.market_data,
            ingested_at=now_ms(),
            ingest_seconds=t2 - t0,
            counts=_then(tracking, lambda done: _counts(done[0], checked, liquidations)),
            markets=checked.markets,
            positions_open=_then(tracking, lambda done: done[0].open),
            positions_opened=_then(tracking, lambda done: done[0].open.filter(pa.array(done[0].new))),
            positions_closed=_then(tracking, lambda done: done[0].closed),
            wallets=wallets,
            fills=checked.fills,
            series=_then(computed, lambda done: done[1]),
            orders=orders,
            marks=marks,
            funding=_funding_rows(checked, previous_time),
            has_orders=checked.orders is not None,
            close_times=possible_close_times(checked.fills, checked.time),
            orders_ended_at=self._orders_at[1] if checked.orders is not None and self._orders_at else None,
        )
        try:
            self.store.write_update(batch)
        finally:
            beside: list[Future[Any]] = [computed, orders, marks]
            wait(beside)  # never two updates' work at once, nor any outliving a failed write
        tracked, tracking_seconds = tracking.result()
        rows, _, metrics_seconds = computed.result()
        # what the next update is compared with moves on only once this one is stored
        if orders.result() is not None:
            self._order_keys, self._orders_at = self._pending_order_keys, (checked.height, checked.time)
        if marks.result() is not None:
            self._marked = self._pending_marked
        t4 = time.perf_counter()
        self._open, self._open_keys, self._open_height = tracked.open, tracked.keys, checked.height
        self._next_key = tracked.next_key
        self._profiles = tracked.profiles
        self._groups = rows.groups()
        result = IngestResult(
            height=checked.height,
            positions=tracked.open.num_rows,
            opened=tracked.opened,
            closed=tracked.closed.num_rows,
            liquidations=liquidations,
            seconds={"validate": t1 - t0, "tracking": tracking_seconds, "metrics": metrics_seconds, "store": t4 - t2},
        )
        if self.retention is not None and (
            self._retention_at is None or checked.time - self._retention_at >= RETENTION_EVERY_MS
        ):
            self._retention_at = checked.time
            deleted = self.store.apply_retention(self.retention, checked.time)
            result.seconds["retention"] = time.perf_counter() - t4
            log.debug("retention at height %s deleted %s", checked.height, deleted)
        result.total_seconds = time.perf_counter() - t0
        for listener in self.listeners:
            listener(result)
        return result

    def between_updates(self) -> float:
        """The store's upkeep in the idle time after an update (a DuckDB checkpoint when its log has grown):
        seconds spent. A failure is logged, not raised: the next update's own write says whether the store
        still works."""
        t0 = time.perf_counter()
        try:
            self.store.between_updates()
        except HyperscopeError as e:
            log.warning("store upkeep between updates failed (the next update tries again): %s", e.message)
        return time.perf_counter() - t0

    def _order_write(self, update: StateUpdate) -> OrderWrite | None:
        """The order spans an update with an order table opens and ends (None when it has none), given the
        spans open before it (`_order_keys`, loaded from the store first)."""
        if update.orders is None:
            return None
        changes = order_changes(update.orders, self._order_keys)
        self._pending_order_keys = changes.keys
        height, time = self._orders_at if self._orders_at else (None, None)
        return OrderWrite(opened=changes.opened, ended=changes.ended, ended_height=height, ended_time=time)

    def _marks(self, profiles: pa.Table, time_ms: int, previous_ms: int | None) -> pa.Table | None:
        """Wallet PnL, volume and size-cohort marks at the first update of an hour: the changed wallets, or every
        wallet at the first update of a UTC day or the first hour after a restart (the leaderboards' and the
        cohort migration's baselines). A restart
        inside an hour that is marked already writes nothing until the next hour (never a mark at another time)."""
        if previous_ms is not None and time_ms // HOUR_MS == previous_ms // HOUR_MS:
            return None
        current = profiles.select(["address", "pnl", "volume", "size_segment"])
        full = self._marked is None or previous_ms is None or time_ms // DAY_MS != previous_ms // DAY_MS
        changed = None if full else changed_rows(current, self._marked, ("pnl", "volume", "size_segment"))
        rows = current if changed is None else current.filter(pa.array(changed))
        self._pending_marked = current
        return rows.append_column("full_mark", pa.array(np.full(rows.num_rows, changed is None)))

    def _changed_profiles(self, profiles: pa.Table, continuing: bool) -> pa.Table:
        """Only the profiles that changed since the update held in memory (all of them after a restart)."""
        changed = changed_rows(profiles, self._profiles if continuing else None)
        return profiles if changed is None else profiles.filter(pa.array(changed))

    def _previous_open(self, latest_height: int | None) -> pa.Table | None:
        if latest_height is None:
            return None
        if self._open is not None and self._open_height == latest_height:
            return self._open
        return self.store.load_open_positions()

    @staticmethod
    def _reject(update: StateUpdate, reason: str) -> InvalidStateUpdate:
        log.warning("rejected state update height=%s source=%s: %s", update.height, update.source, reason)
        return InvalidStateUpdate(f"state update {update.height} rejected: {reason}")


def _funding_rows(update: StateUpdate, previous_ms: int | None) -> pa.Table | None:
    """The hour's funding rows when this is the first state update of an hour (stamped at the hour): each
    market's hourly rate and the USD open interest it settles on (one side: open interest in coins x mark)."""
    if previous_ms is not None and update.time // HOUR_MS == previous_ms // HOUR_MS:
        return None
    m = update.markets
    n = m.num_rows
    return pa.table(
        {
            "time": pa.array(np.full(n, update.time // HOUR_MS * HOUR_MS, np.int64)),
            "coin": m.column("coin"),
            "dex": m.column("dex"),
            "rate": m.column("funding"),
            "open_interest_usd": pc.multiply(m.column("open_interest"), m.column("mark_px")),
            "height": pa.array(np.full(n, update.height, np.int64)),
        }
    )


A = TypeVar("A")
B = TypeVar("B")


def _track(
    checked: StateUpdate, previous: pa.Table | None, next_key: int, keys: pa.Array | None, profiles: pa.Table
) -> tuple[Tracked, float]:
    """(the tracked lifecycles, seconds taken): run on the ingestor's worker thread."""
    t0 = time.perf_counter()
    tracked = track(checked, previous, next_key=next_key, previous_keys=keys, profiles=profiles)
    return tracked, time.perf_counter() - t0


def _metrics(
    checked: StateUpdate, tracking: Future[tuple[Tracked, float]], groups: dict[str, pa.Table] | None
) -> tuple[metrics.MetricRows, dict[str, pa.Table], float]:
    """(the metric rows, as the store's tables, seconds taken): run on the ingestor's worker thread, after
    the tracking it reads."""
    t0 = time.perf_counter()
    rows = metrics.compute(checked, tracking.result()[0], groups)
    return rows, _series_tables(rows), time.perf_counter() - t0


def _counts(tracked: Tracked, checked: StateUpdate, liquidations: int) -> dict[str, int]:
    return {
        "positions": tracked.open.num_rows,
        "wallets": checked.wallets.num_rows,
        "opened": tracked.opened,
        "closed": tracked.closed.num_rows,
        "liquidations": liquidations,
    }


def _then(source: Future[A], part: Callable[[A], B]) -> Future[B]:
    """A future of `part` of what `source` turns out to be (its error, or the error of `part`, passed on)."""
    out: Future[B] = Future()

    def settle(done: Future[A]) -> None:
        try:
            out.set_result(part(done.result()))
        except BaseException as e:  # handed to whoever waits for `out`
            out.set_exception(e)

    source.add_done_callback(settle)
    return out


def _series_tables(rows: metrics.MetricRows) -> dict[str, pa.Table]:
    return {
        "metrics_general": pa.Table.from_pylist([rows.general]),
        "metrics_coin": rows.coin,
        "metrics_coin_segment": rows.coin_segment,
        "metrics_coin_bucket": rows.coin_bucket,
        "metrics_segment": rows.segment,
        "metrics_perp_volume": pa.table({"volume": [rows.perp_volume]}),
        "metrics_wallets_equity": pa.Table.from_pylist([rows.wallets_equity]),
        "metrics_liquidation": rows.liquidation,
    }
