"""The store interface the ingest path and the service layer depend on."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa

from hyperscope.domain.state import TS
from hyperscope.domain.time import DAY_MS, HOUR_MS, MINUTE_MS

T = TypeVar("T")
SCHEMA_VERSION = 9  # of schema.sql; each backend migrates older stores up to it
# the columns of a lifecycle's identity (written when it opens) and of its numbers (rewritten every update)
LIFECYCLE_COLUMNS = ("key", "id", "address", "coin", "dex", "side", "leverage_type", "open_time", "created_at")
STATE_COLUMNS = (
    "key",
    "size",
    "entry_px",
    "mark_px",
    "value",
    "unrealized_pnl",
    "funding",
    "liquidation_px",
    "liquidation_progress",
    "leverage",
    "margin_used",
    "updated_at",
    "height",
    "size_segment",
    "pnl_segment",
    "size_bucket",
)
SERIES_TABLES = (
    "metrics_general",
    "metrics_coin",
    "metrics_coin_segment",
    "metrics_coin_bucket",
    "metrics_segment",
    "metrics_perp_volume",
    "metrics_wallets_equity",
    "metrics_liquidation",
)
# family -> (table, {filter field: column}); the one place that maps a series to where it is stored
_FAMILIES: dict[str, tuple[str, dict[str, str]]] = {
    "general": ("metrics_general", {}),
    "perp_volume": ("metrics_perp_volume", {}),
    "wallets_equity": ("metrics_wallets_equity", {}),
    "coin": ("metrics_coin", {"coin": "coin"}),
    "coin_segment": ("metrics_coin_segment", {"coin": "coin", "segment": "segment_id", "timeframe": "timeframe"}),
    "coin_bucket": ("metrics_coin_bucket", {"coin": "coin", "bucket": "size_bucket"}),
    "segment": ("metrics_segment", {"segment": "segment_id", "timeframe": "timeframe"}),
    "liquidation": ("metrics_liquidation", {"coin": "coin"}),
}


@dataclass(frozen=True)
class Series:
    """One metric series, named by what it measures: `Series("coin", coin="BTC")`. Fields left None widen it
    to every series of the family (`Series("coin")` at one height is every coin's row)."""

    family: str  # general | perp_volume | wallets_equity | coin | coin_segment | coin_bucket | segment | liquidation
    coin: str | None = None
    segment: int | None = None
    timeframe: str | None = None
    bucket: int | None = None

    def __post_init__(self) -> None:
        if self.family not in _FAMILIES:
            raise ValueError(f"unknown series family {self.family!r}")
        allowed = _FAMILIES[self.family][1]
        for name in ("coin", "segment", "timeframe", "bucket"):
            if getattr(self, name) is not None and name not in allowed:
                raise ValueError(f"a {self.family} series has no {name}")

    def located(self) -> tuple[str, dict[str, Any]]:
        """(table, {column: value}) of the rows of this series: for the stores only."""
        table, columns = _FAMILIES[self.family]
        values = {column: getattr(self, name) for name, column in columns.items()}
        return table, {column: value for column, value in values.items() if value is not None}


MISSING_MARKET = {"mid_px": None, "premium": None, "sz_decimals": None, "max_leverage": None}
OPEN_FOREVER = 9_223_372_036_854_775_807  # the close time an open lifecycle sorts and filters with
HISTORY_FIELDS = (
    "id",
    "address",
    "coin",
    "dex",
    "side",
    "size",
    "entry_px",
    "mark_px",
    "value",
    "liquidation_px",
    "unrealized_pnl",
    "funding",
    "leverage_type",
    "leverage",
    "open_time",
    "close_time",
    "created_at",
    "updated_at",
    "size_segment",
    "pnl_segment",
)
# the orders a history page can come in (by the store's own column names), and the expression each sorts by
HISTORY_SORT = {
    "open_time": "open_time",
    "close_time": f"coalesce(close_time, {OPEN_FOREVER})",
    "unrealized_pnl": "unrealized_pnl",
    "value": "value",
    "size": "size",
}


def to_storage(table: pa.Table) -> pa.Table:
    """Timestamps become epoch-ms BIGINT; everything else passes through."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        columns.append(column.cast(pa.int64()) if pa.types.is_timestamp(field.type) else column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def as_open_positions(table: pa.Table) -> pa.Table:
    """Stored open positions (epoch-ms times, small-int cohorts) in the types the tracking step holds."""
    columns = []
    for name in table.column_names:
        column = table.column(name)
        if name in ("open_time", "close_time", "created_at", "updated_at"):
            column = column.cast(TS)
        elif name in ("size_segment", "pnl_segment", "size_bucket"):
            column = column.cast(pa.int8())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


@dataclass(frozen=True)
class WriteBatch:
    """Everything one state update writes, as columnar tables; written as one transaction."""

    height: int
    time: int
    source: str
    ingested_at: int
    ingest_seconds: float  # validate and the wallet profiles: the work before the write starts
    # The fields that may be a Future are being computed on another thread while the store writes the others
    # (a writer reads them through `ready()`, as late as it can; the ingestor computes them in this order:
    # changed wallets, lifecycles (positions and counts), orders, marks, series).
    counts: dict[str, int] | Future[dict[str, int]]  # positions, wallets, opened, closed, liquidations
    markets: pa.Table
    positions_open: pa.Table | Future[pa.Table]  # every open position (replaces the previous ones)
    positions_opened: pa.Table | Future[pa.Table]  # the rows of positions_open whose lifecycle this update opened
    positions_closed: pa.Table | Future[pa.Table]  # lifecycles this update ended, with their final state
    wallets: pa.Table | Future[pa.Table]  # upserted by address
    fills: pa.Table | None
    series: dict[str, pa.Table] | Future[dict[str, pa.Table]]  # metrics table -> rows without id/height/created_at
    # known before the lifecycles are (a store that prepares for the days they fall on need not wait for them):
    # every time a lifecycle this update ends can close at (numpy int64, `tracking.possible_close_times`)
    close_times: Any
    orders: OrderWrite | None | Future[OrderWrite | None] = None  # None: no order table in this update
    marks: pa.Table | None | Future[pa.Table | None] = None  # wallet_marks rows (address, pnl, volume, full_mark)
    funding: pa.Table | None = None  # funding_hourly rows (the first update of an hour)
    market_data: str = ""  # where the update's marks came from (StateUpdate.market_data)
    has_orders: bool = False  # the update carried an order table (a snapshot): `orders` is not None
    # known before the order spans are: when the spans this update ends were last held (None: none end)
    orders_ended_at: int | None = None


def ready(value: T | Future[T]) -> T:
    """A batch field's value, waiting for it when another thread is still computing it (its error is raised
    here, inside the writer's transaction, which then rolls back)."""
    return value.result() if isinstance(value, Future) else value


@dataclass(frozen=True)
class OrderWrite:
    """The order spans one state update opened, and those it ended (last held at `ended_height`)."""

    opened: pa.Table
    ended: Any  # numpy int64 span keys
    ended_height: int | None
    ended_time: int | None


def order_rows(orders: OrderWrite, height: int) -> tuple[pa.Table | None, pa.Table | None]:
    """(order_ends rows, order_spans rows) one state update appends for its order changes (None: no rows)."""
    ends = None
    if len(orders.ended) and orders.ended_height is not None:
        n = len(orders.ended)
        ends = pa.table(
            {
                "span": pa.array(orders.ended, pa.int64()),
                "last_height": pa.array(np.full(n, orders.ended_height, np.int64)),
                "last_time": pa.array(np.full(n, orders.ended_time, np.int64)),
            }
        )
    opened = orders.opened
    spans = None
    if opened.num_rows:
        spans = opened.append_column("first_height", pa.array(np.full(opened.num_rows, height, np.int64)))
    return ends, spans


@dataclass(frozen=True)
class Retention:
    """How long each table family is kept, in milliseconds of state-update time.

    Metric rows (every series table and markets) keep every state update for `full_resolution`, then one
    state update per `thin_every` (the last one in each interval) until `metrics`, then none. Closed
    lifecycles are kept `positions` after they close, fills `fills` after they happened, order spans
    `orders` after they ended (with the state updates that hold their snapshots).
    """

    metrics: int
    full_resolution: int
    thin_every: int
    positions: int
    fills: int
    orders: int
    funding: int

    @classmethod
    def from_settings(cls, settings: Any) -> Retention:
        return cls(
            metrics=int(settings.retention_metrics_days * DAY_MS),
            full_resolution=int(settings.retention_full_resolution_hours * HOUR_MS),
            thin_every=max(1, int(settings.retention_thin_minutes * MINUTE_MS)),
            positions=int(settings.retention_positions_days * DAY_MS),
            fills=int(settings.retention_fills_hours * HOUR_MS),
            orders=int(settings.retention_orders_days * DAY_MS),
            funding=int(settings.retention_funding_days * DAY_MS),
        )


@dataclass(frozen=True)
class HistoryQuery:
    """A page of /positions: lifecycles open at some moment of [start, end], filtered, in one order."""

    start: int
    end: int
    limit: int
    order_by: str = "open_time"  # a key of HISTORY_SORT
    descending: bool = False
    coins: tuple[str, ...] | None = None
    addresses: tuple[str, ...] | None = None
    open: bool | None = None  # True: open only, False: closed only
    segment: int | None = None  # size or PnL cohort of the position's wallet at the time of the record
    after: tuple[Any, int] | None = None  # (sort value, lifecycle key) of the last row of the previous page


@dataclass(frozen=True)
class LatestUpdate:
    height: int
    time: int
    ingested_at: int


class Store(Protocol):
    """What the ingest path and the service layer need from a backend (store/duckdb.py, store/postgres.py).

    Every method says what it is for; table and column names stay inside the backends. `latest()` reads what
    is committed now, so processes sharing one database agree on the newest state update.
    """

    backend: str
    path: str  # where the data lives, for messages (a file, or the database URL without its password)

    # the write side
    def latest(self) -> LatestUpdate | None: ...
    def has_height(self, height: int) -> bool: ...
    def load_open_positions(self) -> pa.Table: ...
    def next_lifecycle_key(self) -> int: ...
    def write_update(self, batch: WriteBatch) -> None: ...
    def between_updates(self) -> None: ...
    def apply_retention(self, policy: Retention, now: int) -> dict[str, int]: ...

    # the read side
    def series(
        self, series: Series, start: int, end: int, before: tuple[int, int] | None, limit: int
    ) -> list[dict[str, Any]]: ...
    def sampled_series(self, series: Series, start: int, end: int, step_ms: int) -> list[dict[str, Any]]: ...
    def series_at(self, series: Series, height: int) -> list[dict[str, Any]]: ...
    def series_peak(self, series: Series, field: str) -> dict[str, Any] | None: ...
    def market_at(self, coin: str, height: int) -> dict[str, Any] | None: ...
    def coins(self) -> list[dict[str, Any]]: ...
    def markets_at(self, height: int) -> list[dict[str, Any]]: ...
    def wallet(self, address: str) -> dict[str, Any] | None: ...
    def open_positions(self, coins: list[str]) -> pa.Table: ...
    def position_history(self, query: HistoryQuery) -> list[dict[str, Any]]: ...
    def past_height(self, time: int) -> int | None: ...
    def metric_groups(self, height: int, groups: dict[str, tuple[str, ...]]) -> dict[str, pa.Table]: ...
    def order_update(self, time: int) -> tuple[int, int] | None: ...
    def first_order_update(self, since: int) -> int | None: ...
    def orders_at(self, height: int, coins: list[str] | None = None) -> pa.Table: ...
    def open_order_spans(self) -> tuple[Any, tuple[int, int] | None]: ...
    def wallet_baselines(self, time: int) -> pa.Table: ...
    def first_mark_time(self) -> int | None: ...
    def wallets_with_exposure(self) -> pa.Table: ...
    def funding_rows(self, coins: list[str], start: int, end: int, with_database_time: bool = False) -> pa.Table: ...
    def funding_coverage(self) -> dict[str, tuple[int, int]]: ...
    def status(self) -> dict[str, Any]: ...
    def state_update_times(self, first_height: int, last_height: int) -> dict[int, int]: ...
    def kept_updates(self, limit: int) -> dict[int, int]: ...

    # settings
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def legacy_keys(self) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...
