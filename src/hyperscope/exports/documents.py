"""The export files' contents: each a JSON document of the upstream shape plus the same data as one flat
table (for `?format=csv` and `?format=parquet`). Built at one state update from what the service reads (the
one door to the data).

The numbers come from the stored metric rows (the ones the series routes serve) or, for the liquidation
heatmap and the leaderboards, from the stored open positions and wallet profiles through the one
implementation in `metrics/` and `domain/formulas.py`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from hyperscope.domain import formulas
from hyperscope.domain.buckets import SIZE_BUCKETS
from hyperscope.domain.cohorts import SEGMENT_IDS, SEGMENTS_BY_ID
from hyperscope.domain.heatmap import liquidation_heatmap
from hyperscope.domain.time import DAY_MS, HOUR_MS
from hyperscope.domain.timefmt import iso_ms
from hyperscope.exports.positions import no_liquidation_as_zero
from hyperscope.service import Series, Service

FORMATS = {"json": "application/json", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
EQUITY_COLUMNS = [
    "totalWalletsEquity",
    "perpWalletsEquity",
    "spotWalletsEquity",
    "stakingWalletsEquity",
    "vaultWalletsEquity",
]
EQUITY_FIELDS = ("total", "perp", "spot", "staking", "vault")
POSITION_METRICS_COLUMNS = [
    "timestamp",
    "positionCount",
    "positionCountLong",
    "totalPositionValue",
    "totalPositionValueLong",
]
SEGMENT_METRICS_COLUMNS = [
    "timestamp",
    "positionCount",
    "positionCountLong",
    "totalPositionValue",
    "totalPositionValueLong",
    "bias",
]
PERIODS = {"day": DAY_MS, "week": 7 * DAY_MS, "month": 30 * DAY_MS, "all": None}
LEADERBOARD_ROWS = 25_000


@dataclass(frozen=True)
class Document:
    """One export: its JSON body and the same rows as a flat table."""

    body: Any
    table: pa.Table

    def render(self, fmt: str) -> bytes:
        if fmt == "json":
            return orjson.dumps(self.body, option=orjson.OPT_SERIALIZE_NUMPY)
        out = io.BytesIO()
        if fmt == "csv":
            pacsv.write_csv(self.table, out, pacsv.WriteOptions(quoting_style="needed"))
        else:
            pq.write_table(self.table, out, compression="zstd")
        return out.getvalue()


def _long_fraction(long: float, total: float) -> float | None:
    return formulas.scalar(formulas.long_fraction, long, total)


def _segment_ref(segment_id: int) -> dict[str, Any]:
    s = SEGMENTS_BY_ID[segment_id]
    return {"id": s.id, "name": s.name, "category": s.category, "criteria": s.criteria()}


def _columns_table(columns: list[str], rows: list[list[Any]], **extra: Any) -> pa.Table:
    data = {name: [row[i] for row in rows] for i, name in enumerate(columns)}
    table = pa.table(data) if rows else pa.table({name: pa.array([], pa.null()) for name in columns})
    for i, (name, value) in enumerate(extra.items()):
        table = table.add_column(i, name, pa.array([value] * table.num_rows))
    return table


# ---------------------------------------------------------------- market-wide


def wallets_equity(reads: Service, latest_time: int) -> Document:
    """total-wallets-equity-chart-data: the ATH breakdown, the breakdown 24 h earlier and the history
    (the last state update of every 2 hours, oldest first)."""
    equity = Series("wallets_equity")
    ath = reads.series_peak(equity, "total")
    past = reads.past_height(latest_time - DAY_MS)
    past_rows = reads.series_at(equity, past) if past is not None else []
    history = reads.sampled_series(equity, 0, latest_time, 2 * HOUR_MS)
    history.reverse()
    rows = [[iso_ms(r["created_at"]), *(r[f] for f in EQUITY_FIELDS)] for r in history]
    body = {
        "athData": {"columns": EQUITY_COLUMNS, "data": [ath[f] for f in EQUITY_FIELDS] if ath else []},
        "data24HoursAgo": {
            "columns": EQUITY_COLUMNS,
            "data": [past_rows[0][f] for f in EQUITY_FIELDS] if past_rows else [],
        },
        "history": {"columns": ["timestamp", *EQUITY_COLUMNS], "data": rows},
    }
    return Document(body, _columns_table(["timestamp", *EQUITY_COLUMNS], rows))


def segments_bias_24h(reads: Service, latest_time: int) -> Document:
    """segments-bias-charts-data-24h: per cohort, perpBias of positions opened within 24 h at every state
    update of the last 72 hours, oldest first, keyed by segmentId."""
    body: dict[str, Any] = {}
    flat: list[list[Any]] = []
    for segment in SEGMENT_IDS:
        cohort = Series("segment", segment=segment, timeframe="24h")
        rows = reads.series(cohort, latest_time - 72 * HOUR_MS, latest_time, None, 100_000)
        rows.reverse()
        data = [
            [
                iso_ms(r["created_at"]),
                formulas.scalar(
                    formulas.perp_bias, r["open_long_value"], r["open_short_value"], r["active_perp_equity"]
                ),
            ]
            for r in rows
        ]
        body[str(segment)] = {"segmentId": segment, "columns": ["timestamp", "bias"], "data": data}
        flat += [[segment, *row] for row in data]
    return Document(body, _columns_table(["segmentId", "timestamp", "bias"], flat))


# ---------------------------------------------------------------- per coin


def position_metrics(reads: Service, coin: str, latest_time: int) -> Document:
    """position-metrics: the coin's latest state update, then its series sampled every 2 hours, newest first.
    A sample is stamped with its even UTC hour and holds the last state update at or before it; rows hold no
    coin (as upstream's), and neither do `columns`, so that rows line up with them. CSV and Parquet add the
    coin as a column."""
    step = 2 * HOUR_MS
    sampled = reads.sampled_series(Series("coin", coin=coin), 0, latest_time, step)
    latest = reads.series(Series("coin", coin=coin), latest_time, latest_time, None, 1)
    newest = latest[0]["created_at"] if latest else None
    rows_in = [(r["created_at"], r) for r in latest]
    rows_in += [(-(-r["created_at"] // step) * step, r) for r in sampled if r["created_at"] != newest]
    rows = [
        [
            iso_ms(at),
            r["position_count"],
            r["position_count_long"],
            r["total_position_value"],
            r["total_position_value_long"],
        ]
        for at, r in rows_in
    ]
    body = {"coin": coin, "metrics": {"columns": POSITION_METRICS_COLUMNS, "data": rows}}
    return Document(body, _columns_table(POSITION_METRICS_COLUMNS, rows, coin=coin))


def _now_and_past(
    reads: Service, series: Series, key: str, height: int, latest_time: int
) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]] | None]:
    """The series' rows at `height` and at the `past` state update 24 h earlier (None if none is kept), by key."""
    now = {r[key]: r for r in reads.series_at(series, height)}
    past_height = reads.past_height(latest_time - DAY_MS)
    past = {r[key]: r for r in reads.series_at(series, past_height)} if past_height is not None else None
    return now, past


def _figures(now: dict[int, dict[str, Any]], past: dict[int, dict[str, Any]] | None, key: int) -> dict[str, Any]:
    """One breakdown row's figures: now, 24 h ago (null when nothing that old is kept; 0 when the group was
    empty then), and the long fraction."""
    r, p = now.get(key), (past or {}).get(key)
    total = r["total_position_value"] if r else 0.0
    long = r["total_position_value_long"] if r else 0.0
    return {
        "positionCount": r["position_count"] if r else 0,
        "pastPositionCount": (p["position_count"] if p else 0) if past is not None else None,
        "totalPositionValue": total,
        "pastTotalPositionValue": (p["total_position_value"] if p else 0.0) if past is not None else None,
        "totalPositionValueLong": long,
        "valueCloseToLiquidation": r["value_close_to_liquidation"] if r else 0.0,
        "bias": _long_fraction(long, total),
    }


def breakdown_by_size(reads: Service, coin: str, height: int, latest_time: int) -> Document:
    """position-breakdown-by-size (and the `positions` export): the ten size buckets now and 24 h ago."""
    now, past = _now_and_past(reads, Series("coin_bucket", coin=coin), "size_bucket", height, latest_time)
    items = []
    for b in SIZE_BUCKETS:
        items.append(
            {
                "sizeSegmentId": b.id,
                "size": b.label,
                "minSize": b.min_size,
                "maxSize": b.max_size,
                **_figures(now, past, b.id),
            }
        )
    created = iso_ms(latest_time)
    body = {"coin": coin, "createdAt": created, "breakdownBySize": items}
    return Document(body, pa.Table.from_pylist([{"coin": coin, "createdAt": created, **i} for i in items]))


def breakdown_by_cohort(reads: Service, coin: str, height: int, latest_time: int) -> Document:
    """position-breakdown-by-cohort: the 16 cohorts' positions in the coin now and 24 h ago."""
    cohorts = Series("coin_segment", coin=coin, timeframe="all")
    now, past = _now_and_past(reads, cohorts, "segment_id", height, latest_time)
    created = iso_ms(latest_time)
    items, flat = [], []
    for segment in SEGMENT_IDS:
        item = {
            "segmentId": segment,
            "segment": _segment_ref(segment),
            **_figures(now, past, segment),
            "timestamp": created,
        }
        items.append(item)
        flat.append(
            {
                "coin": coin,
                **{k: v for k, v in item.items() if k != "segment"},
                "segmentName": SEGMENTS_BY_ID[segment].name,
            }
        )
    body = {"coin": coin, "createdAt": created, "breakdownByCohort": items}
    return Document(body, pa.Table.from_pylist(flat))


def segment_metrics(reads: Service, coin: str, latest_time: int) -> Document:
    """segment-metrics: per cohort, the coin's latest figures then one every 12 hours over 7 days."""
    segments, flat = [], []
    for segment in SEGMENT_IDS:
        cohort = Series("coin_segment", coin=coin, segment=segment, timeframe="all")
        latest = reads.series(cohort, latest_time, latest_time, None, 1)
        sampled = reads.sampled_series(cohort, latest_time - 7 * DAY_MS, latest_time, 12 * HOUR_MS)
        rows_in = latest + [r for r in sampled if not latest or r["created_at"] != latest[0]["created_at"]]
        data = [
            [
                iso_ms(r["created_at"]),
                r["position_count"],
                r["position_count_long"],
                r["total_position_value"],
                r["total_position_value_long"],
                _long_fraction(r["total_position_value_long"], r["total_position_value"]),
            ]
            for r in rows_in
        ]
        segments.append(
            {"segment": _segment_ref(segment), "metrics": {"columns": SEGMENT_METRICS_COLUMNS, "data": data}}
        )
        flat += [[segment, *row] for row in data]
    body = {"coin": coin, "segments": segments}
    return Document(body, _columns_table(["segmentId", *SEGMENT_METRICS_COLUMNS], flat, coin=coin))


def heatmap(reads: Service, coin: str, mark: float, latest_time: int) -> Document:
    """liquidation-heatmap: 100 bins over mark +-50% from the coin's open positions (domain/heatmap.py)."""
    rows = reads.positions_of([coin])
    bins = liquidation_heatmap(
        mark,
        no_liquidation_as_zero(rows.column("liquidation_px")),
        rows.column("value").to_numpy(),
        rows.column("size_segment").to_numpy(zero_copy_only=False),
        rows.column("pnl_segment").to_numpy(zero_copy_only=False),
    )
    items = [
        {
            "coin": coin,
            "priceBinIndex": i,
            "priceBinStart": float(bins["start"][i]),
            "priceBinEnd": float(bins["end"][i]),
            "liquidationValue": float(bins["value"][i]),
            "positionsCount": int(bins["count"][i]),
            "mostImpactedSegment": int(bins["segment"][i]) if bins["segment"][i] else None,
        }
        for i in range(len(bins["start"]))
    ]
    body = {"coin": coin, "markPrice": mark, "createdAt": iso_ms(latest_time), "heatmap": items}
    return Document(body, pa.Table.from_pylist(items))


# ---------------------------------------------------------------- leaderboards and orders


def perp_pnl_leaderboard(reads: Service, period: str, latest_time: int) -> Document:
    """Perp PnL per wallet over the trailing period, ranked (semantics.md section 9), at most 25,000 rows.

    A wallet's period PnL (and volume) is its all-time figure now minus the one at its newest hourly mark at
    or before the period's start (a wallet first seen later counts from its first mark). When the store's
    marks begin after the period's start (a store younger than a week, say), the period is partial: `start`
    is when the marks begin, `periodStart` the period's own start, `complete` false, and every row says its
    `start` (so do the CSV and Parquet files), never a week that is silently a day.
    """
    wallets = reads.wallets_with_exposure()
    pnl = wallets.column("pnl").to_numpy()
    volume = wallets.column("volume").to_numpy()
    span = PERIODS[period]
    if span is not None:
        base = reads.wallet_baselines(latest_time - span)
        at = pc.index_in(wallets.column("address"), value_set=base.column("address"))
        found = at.is_valid().to_numpy(zero_copy_only=False)
        idx = at.fill_null(0).to_numpy(zero_copy_only=False)
        base_pnl, base_vol = pnl.copy(), volume.copy()  # a wallet without any mark: nothing in the period
        if base.num_rows:
            base_pnl[found] = base.column("pnl").to_numpy(zero_copy_only=False)[idx[found]]
            base_vol[found] = base.column("volume").to_numpy(zero_copy_only=False)[idx[found]]
        pnl, volume = pnl - base_pnl, volume - base_vol
    equity = wallets.column("perp_equity").to_numpy()
    open_value = wallets.column("open_value").to_numpy()
    open_long = wallets.column("open_value_long").to_numpy()
    active = (pnl != 0) | (open_value > 0)
    order = np.lexsort((wallets.column("address").to_numpy(zero_copy_only=False), -pnl))
    order = order[active[order]][:LEADERBOARD_ROWS]
    bias = formulas.perp_bias(open_long, open_value - open_long, equity)
    exposure = formulas.exposure_ratio(open_value, equity)
    table = pa.table(
        {
            "rank": np.arange(1, len(order) + 1),
            "address": wallets.column("address").take(pa.array(order)),
            "pnl": pnl[order],
            "volume": volume[order],
            "perpEquity": equity[order],
            "openValue": open_value[order],
            "openValueLong": open_long[order],
            "perpBias": pa.array(bias[order], from_pandas=True),
            "exposureRatio": pa.array(exposure[order], from_pandas=True),
        }
    )
    period_start = None if span is None else latest_time - span
    first = reads.first_mark_time()
    complete = period_start is None or (first is not None and first <= period_start)
    start = period_start if complete else first
    table = table.append_column(
        "start", pa.array([iso_ms(start) if start is not None else None] * table.num_rows, pa.string())
    )
    body = {
        "period": period,
        "createdAt": iso_ms(latest_time),
        "start": iso_ms(start) if start is not None else None,
        "periodStart": iso_ms(period_start) if period_start is not None else None,
        "complete": complete,
        "end": iso_ms(latest_time),
        "totalCount": table.num_rows,
        "data": table.drop_columns(["start"]).to_pylist(),
    }
    return Document(body, table)


def orders_snapshot(reads: Service, height: int, snapshot_ms: int, coins: list[str] | None = None) -> Document:
    """Every order open at the state update `height` (the newest at or before the snapshot time)."""
    t = reads.orders_at(height, coins)
    n = t.num_rows
    table = pa.table(
        {
            "height": pa.array(np.full(n, height, np.int64)),
            "address": t.column("address"),
            "oid": t.column("oid"),
            "coin": t.column("coin"),
            "side": t.column("side"),
            "limitPx": t.column("limit_px"),
            "sz": t.column("sz"),
            "origSz": t.column("orig_sz"),
            "timestamp": t.column("timestamp"),
            "orderType": t.column("order_type"),
            "tif": t.column("tif"),
            "reduceOnly": t.column("reduce_only"),
            "isTrigger": t.column("is_trigger"),
            "triggerPx": t.column("trigger_px"),
            "triggerCondition": t.column("trigger_condition"),
            "isPositionTpsl": t.column("is_position_tpsl"),
            "cloid": t.column("cloid"),
            "snapshotTs": pa.array([iso_ms(snapshot_ms)] * n, pa.string()),
        }
    )
    return Document(table.to_pylist(), table)
