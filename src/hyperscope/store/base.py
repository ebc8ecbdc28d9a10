"""The store interface the ingest path and the service layer depend on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

SERIES_TABLES = (
    "metrics_general",
    "metrics_coin",
    "metrics_coin_segment",
    "metrics_coin_bucket",
    "metrics_segment",
    "metrics_perp_volume",
    "metrics_wallets_equity",
)


@dataclass(frozen=True)
class WriteBatch:
    """Everything one state update writes, as columnar tables; written as one transaction."""

    height: int
    time: int
    source: str
    ingested_at: int
    ingest_seconds: float
    counts: dict[str, int]  # positions, wallets, opened, closed, liquidations
    markets: pa.Table
    positions_open: pa.Table  # every open position (replaces the previous ones)
    positions_opened: pa.Table  # the rows of positions_open whose lifecycle this update opened
    positions_closed: pa.Table  # lifecycles this update ended, with their final state (appended)
    wallets: pa.Table  # upserted by address
    fills: pa.Table | None
    series: dict[str, pa.Table]  # metrics table -> rows without id/height/created_at


@dataclass(frozen=True)
class LatestUpdate:
    height: int
    time: int
    ingested_at: int


class Store(Protocol):
    """What the ingest path and the service layer need from a backend (DuckDB now, PostgreSQL later)."""

    backend: str
    path: str

    # the write side
    def latest(self) -> LatestUpdate | None: ...
    def has_height(self, height: int) -> bool: ...
    def load_open_positions(self) -> pa.Table: ...
    def next_lifecycle_key(self) -> int: ...
    def write_update(self, batch: WriteBatch) -> None: ...

    # the read side
    def series(
        self, table: str, where: dict[str, Any], start: int, end: int, before: tuple[int, int] | None, limit: int
    ) -> list[dict[str, Any]]: ...
    def sampled_series(
        self, table: str, where: dict[str, Any], start: int, end: int, step_ms: int
    ) -> list[dict[str, Any]]: ...
    def rows_at(self, table: str, where: dict[str, Any], height: int) -> list[dict[str, Any]]: ...
    def coins(self) -> list[dict[str, Any]]: ...
    def open_positions(self, coin: str) -> pa.Table: ...
    def status(self) -> dict[str, Any]: ...

    # settings and keys
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def insert_key(self, row: dict[str, Any]) -> None: ...
    def list_keys(self) -> list[dict[str, Any]]: ...
    def revoke_key(self, key_id: str, when: int) -> bool: ...
    def close(self) -> None: ...
