"""The reads both stores run as the same SQL (the subset DuckDB and PostgreSQL share), written once.

A backend mixes this in and provides three helpers that take `?` placeholders: `_dicts` (rows as dicts),
`_scalar` (the first column of the first row) and `_arrow` (an Arrow table). The one dialect difference the
shared statements meet, how a list parameter is matched, is `IN_LIST`.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pyarrow as pa

from hyperscope.store.base import Series


class SqlReads:
    IN_LIST = "= ANY(?)"  # `column {IN_LIST}` with a list parameter

    # provided by the backend
    def _dicts(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _scalar(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    def _arrow(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> pa.Table:
        raise NotImplementedError

    # ------------------------------------------------------------ meta and state

    def get_meta(self, key: str) -> str | None:
        value = self._scalar("SELECT value FROM meta WHERE key = ?", [key])
        return str(value) if value is not None else None

    def has_height(self, height: int) -> bool:
        return bool(self._scalar("SELECT count(*) FROM state_updates WHERE height = ?", [height]))

    def next_lifecycle_key(self) -> int:
        return int(
            self._scalar(
                "SELECT coalesce(max(k), 0) + 1 FROM (SELECT max(key) AS k FROM lifecycles "
                "UNION ALL SELECT max(key) AS k FROM positions_closed) AS keys"
            )
        )

    # ------------------------------------------------------------ metric series

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
        return self._dicts(
            f"SELECT * FROM {table} WHERE {' AND '.join(clauses)} ORDER BY id", [height, *where.values()]
        )

    def series_peak(self, series: Series, field: str) -> dict[str, Any] | None:
        """The row of a series with the highest `field` (the earliest on ties)."""
        table, where = series.located()
        if not re.fullmatch(r"[a-z_]+", field):
            raise ValueError(field)
        clauses = " AND ".join(["true"] + [f"{c} = ?" for c in where])
        rows = self._dicts(
            f"SELECT * FROM {table} WHERE {clauses} ORDER BY {field} DESC, created_at, id LIMIT 1", list(where.values())
        )
        return rows[0] if rows else None

    def metric_groups(self, height: int, groups: dict[str, tuple[str, ...]]) -> dict[str, pa.Table]:
        """The groups (`metrics_{name}` -> its key columns) that held positions at one state update."""
        for name, keys in groups.items():
            if not all(re.fullmatch(r"[a-z_]+", x) for x in (name, *keys)):
                raise ValueError(name)
        return {
            name: self._arrow(
                f"SELECT {', '.join(keys)} FROM metrics_{name} WHERE height = ? AND position_count > 0", [height]
            )
            for name, keys in groups.items()
        }

    def past_height(self, time: int) -> int | None:
        """The newest state update at or before `time` whose metric rows are kept (the `past` rule)."""
        return self._scalar(
            "SELECT height FROM metrics_general WHERE created_at <= ? ORDER BY created_at DESC, id DESC LIMIT 1",
            [time],
        )

    # ------------------------------------------------------------ markets and positions

    def market_at(self, coin: str, height: int) -> dict[str, Any] | None:
        """One market's row (mark, oracle, mid, funding, open interest, ...) at one state update."""
        rows = self._dicts("SELECT * FROM markets WHERE height = ? AND coin = ?", [height, coin])
        return rows[0] if rows else None

    def coins(self) -> list[dict[str, Any]]:
        return self._dicts("SELECT coin, coin_lower, dex, last_height FROM coins ORDER BY coin")

    def markets_at(self, height: int) -> list[dict[str, Any]]:
        """Every market's row of one state update."""
        return self._dicts("SELECT * FROM markets WHERE height = ? ORDER BY coin", [height])

    def wallet(self, address: str) -> dict[str, Any] | None:
        """A wallet's newest profile (equity parts, PnL, volume, cohorts)."""
        rows = self._dicts("SELECT * FROM wallets WHERE address = ?", [address])
        return rows[0] if rows else None

    def _markets_at(self, height: int) -> dict[str, dict[str, Any]]:
        """coin -> the market fields /positions serves, at one state update (the last one asked is kept, per
        thread)."""
        local = self.__dict__.setdefault("_markets_local", threading.local())
        cached = getattr(local, "markets", None)
        if cached is None or cached[0] != height:
            rows = self._dicts(
                "SELECT coin, mid_px, premium, sz_decimals, max_leverage FROM markets WHERE height = ?", [height]
            )
            cached = (height, {r.pop("coin"): r for r in rows})
            local.markets = cached
        return cached[1]

    def open_positions(self, coins: list[str]) -> pa.Table:
        """Open positions of the given coins joined with their wallet profiles (the CSV export's rows)."""
        return self._arrow(
            "SELECT p.*, w.total_equity AS profile_total_equity, w.perp_equity AS profile_perp_equity, "
            "w.count_open_positions AS profile_count_open_positions, w.pnl AS profile_pnl, "
            "w.balance AS profile_balance, w.pnl_segment AS profile_pnl_segment, "
            "w.size_segment AS profile_size_segment FROM positions_open p JOIN wallets w ON w.address = p.address "
            f"WHERE p.coin {self.IN_LIST} ORDER BY p.value DESC, p.id",
            [list(coins)],
        )

    def wallets_with_exposure(self) -> pa.Table:
        """Every wallet's profile with its open value and open long value (the leaderboards' rows)."""
        return self._arrow(
            "SELECT w.address, w.perp_equity, w.pnl, w.volume, w.size_segment, "
            "coalesce(p.open_value, 0) AS open_value, "
            "coalesce(p.open_value_long, 0) AS open_value_long FROM wallets w LEFT JOIN (SELECT address, "
            "sum(value) AS open_value, sum(CASE WHEN side = 'long' THEN value ELSE 0 END) AS open_value_long "
            "FROM positions_open GROUP BY address) p ON p.address = w.address"
        )

    def first_mark_time(self) -> int | None:
        return self._scalar("SELECT min(time) FROM wallet_marks")

    # ------------------------------------------------------------ order snapshots

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
            clauses.append(f"s.coin {self.IN_LIST}")
            params.append(list(coins))
        return self._arrow(
            "SELECT s.address, s.oid, s.coin, s.side, s.limit_px, s.sz, s.orig_sz, s.timestamp, s.order_type, s.tif, "
            "s.reduce_only, s.is_trigger, s.trigger_px, s.trigger_condition, s.is_position_tpsl, s.cloid "
            "FROM order_spans s LEFT JOIN order_ends e ON e.span = s.span "
            f"WHERE {' AND '.join(clauses)} ORDER BY s.coin, s.side, s.limit_px, s.oid",
            params,
        )

    # ------------------------------------------------------------ funding

    def funding_rows(self, coins: list[str], start: int, end: int, with_database_time: bool = False) -> pa.Table:
        """Hourly funding rows of the given coins in [start, end], by coin and time (time, coin, rate,
        open_interest_usd, and with `with_database_time` when the row was stored)."""
        extra = ", u.ingested_at AS database_time" if with_database_time else ""
        join = " JOIN state_updates u ON u.height = f.height" if with_database_time else ""
        return self._arrow(
            f"SELECT f.time, f.coin, f.rate, f.open_interest_usd{extra} FROM funding_hourly f{join} "
            f"WHERE f.coin {self.IN_LIST} AND f.time BETWEEN ? AND ? ORDER BY f.coin, f.time",
            [list(coins), start, end],
        )

    def funding_coverage(self) -> dict[str, tuple[int, int]]:
        rows = self._dicts(
            "SELECT coin, min(time) AS lo, max(time) AS hi FROM funding_hourly "
            "WHERE open_interest_usd > 0 GROUP BY coin"
        )
        return {r["coin"]: (r["lo"], r["hi"]) for r in rows}

    # ------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        counts = {
            "state_updates": self._scalar("SELECT count(*) FROM state_updates"),
            "open_positions": self._scalar("SELECT count(*) FROM open_states"),
            "closed_positions": self._scalar("SELECT count(*) FROM positions_closed"),
            "wallets": self._scalar("SELECT count(*) FROM wallets"),
            "coins": self._scalar("SELECT count(*) FROM coins"),
        }
        first = self._dicts("SELECT height, time FROM state_updates ORDER BY height LIMIT 1")
        last = self._dicts(
            "SELECT height, time, ingested_at, ingest_seconds FROM state_updates ORDER BY height DESC LIMIT 1"
        )
        return {
            "backend": getattr(self, "backend", "?"),
            "path": getattr(self, "path", "?"),
            "counts": counts,
            "first": first[0] if first else None,
            "last": last[0] if last else None,
        }

    def kept_updates(self, limit: int) -> dict[int, int]:
        """height -> time of the newest `limit` state updates that keep their metric rows (retention thins
        older ones), oldest first."""
        rows = self._dicts("SELECT height, created_at FROM metrics_general ORDER BY height DESC LIMIT ?", [limit])
        return {r["height"]: r["created_at"] for r in reversed(rows)}

    def state_update_times(self, first_height: int, last_height: int) -> dict[int, int]:
        """height -> time of the stored state updates with heights in [first_height, last_height]."""
        rows = self._dicts(
            "SELECT height, time FROM state_updates WHERE height BETWEEN ? AND ? ORDER BY height",
            [first_height, last_height],
        )
        return {r["height"]: r["time"] for r in rows}
