"""The read side behind every API family: plain rows (the store's snake_case columns) and typed results.

Nothing here knows a JSON shape: the HyperTracker family (`api/hypertracker/shape.py`) and the Coin Metrics
family (`api/coinmetrics/`) turn these results into their own fields, paging tokens and error texts, and a
dashboard can read the same service. Definitions follow semantics.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hyperscope.domain.buckets import SIZE_BUCKETS_BY_ID
from hyperscope.domain.cohorts import SEGMENTS, SEGMENTS_BY_ID, Segment
from hyperscope.domain.coins import base_of, is_hip3
from hyperscope.domain.heatmap import dense
from hyperscope.domain.recency import TIMEFRAMES
from hyperscope.domain.time import DAY_MS, HOUR_MS
from hyperscope.domain.timefmt import now_ms
from hyperscope.domain.writer import WRITER_KEY, WriterRecord
from hyperscope.errors import BadParameter, HyperscopeError, NotFound
from hyperscope.service.charts import CHART_MAX_ROWS, Chart, reduce
from hyperscope.service.funding import FundingService
from hyperscope.service.health import IngestState, health
from hyperscope.service.paging import CursorCodec, Window
from hyperscope.signing import fingerprint
from hyperscope.store.base import HistoryQuery, LatestUpdate, Series, Store

TWO_HOURS_MS = 2 * HOUR_MS
SIXTY_DAYS_MS = 60 * DAY_MS


class UnknownCoin(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown coin {name!r}")


class UnknownSegment(NotFound):
    def __init__(self, value: int) -> None:
        super().__init__(f"unknown segment {value}")


class UnknownBucket(NotFound):
    def __init__(self, value: int) -> None:
        super().__init__(f"unknown position size bucket {value}")


@dataclass(frozen=True)
class Page:
    """A page of rows in the order asked, and whether more rows follow it."""

    rows: list[dict[str, Any]]
    more: bool


class Service:
    def __init__(self, store: Store, cursors: CursorCodec) -> None:
        self.store = store
        self.cursors = cursors  # the HMAC codec every family signs its paging tokens with
        self._coins: dict[str, str] = {}
        self._coins_height: int | None = None
        self._writer: WriterRecord | None = None
        self._writer_read = -1e9

    # ------------------------------------------------------------ lookups

    def latest_height(self) -> int | None:
        latest = self.store.latest()
        return latest.height if latest else None

    def resolve_coin(self, name: str) -> str:
        """Canonical spelling of a coin, matched case-insensitively; UnknownCoin (404) otherwise."""
        height = self.latest_height()
        if height != self._coins_height or not self._coins:
            self._coins = {row["coin_lower"]: row["coin"] for row in self.store.coins()}
            self._coins_height = height
        coin = self._coins.get(name.strip().lower())
        if coin is None:
            raise UnknownCoin(name)
        return coin

    @staticmethod
    def segment(value: int) -> int:
        if value not in SEGMENTS_BY_ID:
            raise UnknownSegment(value)
        return value

    @staticmethod
    def bucket(value: int) -> int:
        if value not in SIZE_BUCKETS_BY_ID:
            raise UnknownBucket(value)
        return value

    def health(
        self,
        stale_after: float | None,
        ingest: IngestState | None,
        *,
        writer_pace: bool = True,
        keys_unavailable: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of /health; see service/health.py. Without an ingest of its own, the writer's
        record in the store says what ingest is doing (and, with `writer_pace`, how stale is too stale)."""
        try:
            latest: LatestUpdate | None | HyperscopeError = self.store.latest()
        except HyperscopeError as e:
            latest = e
        writer = None
        if ingest is None and not isinstance(latest, HyperscopeError):
            writer = self.writer_record()
            if writer is not None and not writer_pace:
                writer = replace(writer, stale_after=None)
        return health(latest, self.store.backend, stale_after, ingest, writer, keys_unavailable)

    def writer_record(self) -> WriterRecord | None:
        """What the store's writer recorded of itself (read at most once a second)."""
        now = time.monotonic()
        if now - self._writer_read >= 1.0:
            try:
                self._writer = WriterRecord.decode(self.store.get_meta(WRITER_KEY))
            except HyperscopeError:
                self._writer = None
            self._writer_read = now
        return self._writer

    @staticmethod
    def timeframe(value: str | None, parameter: str) -> str:
        tf = (value or "all").strip().lower()
        if tf not in TIMEFRAMES:
            raise BadParameter(parameter, f"expected one of {', '.join(TIMEFRAMES)}, got {value!r}")
        return tf

    # ------------------------------------------------------------ series

    def _page(self, series: Series, window: Window) -> Page:
        """Rows of a metrics series in the window, newest first, after the window's cursor."""
        rows = self.store.series(series, window.start, window.end, window.before, window.limit + 1)
        return Page(rows[: window.limit], len(rows) > window.limit)

    def general(self, window: Window) -> Page:
        return self._page(Series("general"), window)

    def perp_volume(self, window: Window) -> Page:
        return self._page(Series("perp_volume"), window)

    def coin_series(self, coin: str, window: Window) -> Page:
        return self._page(Series("coin", coin=coin), window)

    def coin_segment_series(self, coin: str, segment: int, timeframe: str, window: Window) -> Page:
        return self._page(Series("coin_segment", coin=coin, segment=segment, timeframe=timeframe), window)

    def coin_bucket_series(self, coin: str, bucket: int, window: Window) -> Page:
        return self._page(Series("coin_bucket", coin=coin, bucket=bucket), window)

    def bias_history(self, segment: int, timeframe: str, window: Window, sampled: bool) -> Page:
        """A cohort's rows, newest first: every state update of the window, or with `sampled` the last one at
        or before each 2-hour boundary (no paging)."""
        series = Series("segment", segment=segment, timeframe=timeframe)
        if sampled:
            rows = self.store.sampled_series(series, window.start, window.end, TWO_HOURS_MS)
            return Page(rows[: window.limit], False)
        return self._page(series, window)

    @staticmethod
    def default_bias_window() -> Window:
        end = now_ms()
        return Window(start=end - SIXTY_DAYS_MS, end=end, limit=1000, before=None)

    # ------------------------------------------------------------ the newest state update

    def coins(self) -> list[dict[str, Any]]:
        """Every coin's totals at the newest state update."""
        height = self.latest_height()
        return _holding(self.store.series_at(Series("coin"), height)) if height is not None else []

    @staticmethod
    def segments() -> list[Segment]:
        return sorted(SEGMENTS, key=lambda s: s.id)

    def coin_segment_rows(self, timeframe: str, segment: int | None = None) -> list[dict[str, Any]]:
        """Every coin's cohort rows of one recency timeframe (and one cohort) at the newest state update."""
        height = self.latest_height()
        if height is None:
            return []
        return _holding(self.store.series_at(Series("coin_segment", segment=segment, timeframe=timeframe), height))

    def markets_of(self, coin: str) -> list[str]:
        """The markets a coin's open-positions file covers: a main-dex coin across Hyperliquid (its own
        market and every HIP-3 dex's market of the same base, e.g. BTC and hyna:BTC), a HIP-3 coin alone."""
        if is_hip3(coin):
            return [coin]
        self.resolve_coin(coin)
        same_base = [c for c in self._coins.values() if is_hip3(c) and base_of(c) == coin]
        return [coin, *sorted(same_base)]

    def open_positions(self, coin: str) -> Any:
        """The open positions of a coin's markets (`markets_of`) at the newest state update, joined with
        wallet profiles (Arrow)."""
        return self.store.open_positions(self.markets_of(coin))

    def positions(self, query: HistoryQuery) -> Page:
        """Historic positions: one row per lifecycle open during the window, each with its `sort_key`."""
        rows = self.store.position_history(replace(query, limit=query.limit + 1))
        return Page(rows[: query.limit], len(rows) > query.limit)

    @staticmethod
    def query_key(*parts: object) -> str:
        return fingerprint(*parts)

    # ------------------------------------------------------------ what the files are built from
    # (the export documents read through here: the service is the one door to the data)

    def latest(self) -> LatestUpdate | None:
        """The newest state update (height, time, when it was stored), or None on an empty store."""
        return self.store.latest()

    def series(
        self, series: Series, start: int, end: int, before: tuple[int, int] | None, limit: int
    ) -> list[dict[str, Any]]:
        return self.store.series(series, start, end, before, limit)

    def series_at(self, series: Series, height: int) -> list[dict[str, Any]]:
        return self.store.series_at(series, height)

    def sampled_series(self, series: Series, start: int, end: int, step_ms: int) -> list[dict[str, Any]]:
        return self.store.sampled_series(series, start, end, step_ms)

    def series_peak(self, series: Series, field: str) -> dict[str, Any] | None:
        return self.store.series_peak(series, field)

    def past_height(self, time: int) -> int | None:
        """The newest state update at or before `time` whose metric rows are kept (semantics.md's `past`)."""
        return self.store.past_height(time)

    def markets_at(self, height: int) -> list[dict[str, Any]]:
        return self.store.markets_at(height)

    def wallet(self, address: str) -> dict[str, Any] | None:
        return self.store.wallet(address.lower())

    def kept_updates(self, limit: int) -> dict[int, int]:
        """height -> time of the newest `limit` state updates whose aggregates are kept, oldest first: the
        stops of a time slider."""
        return self.store.kept_updates(limit)

    def liquidation_map(self, coin: str, height: int) -> dict[str, Any]:
        """A coin's liquidation map as it was at a state update: its mark then and 100 bins (start, end,
        value, count, most impacted segment), from the bins stored with that update (domain/heatmap.py)."""
        market = self.store.market_at(coin, height) or {}
        mark = float(market.get("mark_px") or 0.0)
        rows = self.store.series_at(Series("liquidation", coin=coin), height)
        stored = {
            "bin": np.array([r["bin"] for r in rows], np.int64),
            "value": np.array([r["liquidation_value"] for r in rows], np.float64),
            "count": np.array([r["position_count"] for r in rows], np.int64),
            "segment": np.array([r["most_impacted_segment"] for r in rows], np.int64),
        }
        return {"mark": mark, **dense(mark, stored)}

    def chart(self, series: Series, fields: tuple[str, ...], start: int, end: int, width: int) -> Chart:
        """A series' fields over [start, end], oldest first, reduced to at most `width` pixel buckets
        (charts.reduce: each bucket's minimum and maximum kept)."""
        rows = self.store.series(series, start, end, None, CHART_MAX_ROWS)[::-1]
        return reduce(rows, fields, width)

    def charts_by(
        self, series: Series, key: str, fields: tuple[str, ...], start: int, end: int, width: int
    ) -> dict[Any, Chart]:
        """`chart` for every series of a family at once (one read), by the value of column `key`
        (e.g. every coin's OI over a day, for sparklines)."""
        groups: dict[Any, list[dict[str, Any]]] = {}
        for row in reversed(self.store.series(series, start, end, None, CHART_MAX_ROWS)):
            groups.setdefault(row[key], []).append(row)
        return {k: reduce(rows, fields, width) for k, rows in groups.items()}

    def market_at(self, coin: str, height: int) -> dict[str, Any] | None:
        return self.store.market_at(coin, height)

    def positions_of(self, markets: list[str]) -> Any:
        """The open positions of these markets at the newest state update, with wallet profiles (Arrow)."""
        return self.store.open_positions(markets)

    def orders_at(self, height: int, coins: list[str] | None = None) -> Any:
        return self.store.orders_at(height, coins)

    def order_update(self, time: int) -> tuple[int, int] | None:
        """(height, time) of the newest state update at or before `time` that carried every open order."""
        return self.store.order_update(time)

    def first_order_update(self, since: int) -> int | None:
        return self.store.first_order_update(since)

    def first_mark_time(self) -> int | None:
        return self.store.first_mark_time()

    def wallet_baselines(self, time: int) -> Any:
        return self.store.wallet_baselines(time)

    def wallets_with_exposure(self) -> Any:
        return self.store.wallets_with_exposure()

    def funding(self) -> FundingService:
        """The Coin Metrics-style funding series over the same data."""
        return FundingService(self.store)


def _holding(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of groups that hold positions: a group that emptied at this update has a row of zeros (so that
    its series says so), which a listing of what is held leaves out."""
    return [r for r in rows if r["position_count"]]
