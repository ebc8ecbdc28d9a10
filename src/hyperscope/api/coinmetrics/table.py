"""/v4 answers as tables: rows as parallel arrays (entity, time, one column per metric), limited per entity,
paged with signed tokens, written as JSON, CSV or NDJSON."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from fastapi import Request
from starlette.responses import Response, StreamingResponse

from hyperscope.api.coinmetrics import shape
from hyperscope.api.coinmetrics.params import query_key
from hyperscope.api.state import api_state
from hyperscope.api.urls import link_base
from hyperscope.domain.time import DAY_MS, HOUR_MS
from hyperscope.service.funding import (
    Series,
)


def _buffer_bytes(strings: pa.Array) -> bytes:
    """The concatenated values of an Arrow string array without nulls, straight from its data buffer."""
    if len(strings) == 0:
        return b""
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32, count=len(strings) + 1, offset=strings.offset * 4)
    return strings.buffers()[2].to_pybytes()[int(offsets[0]) : int(offsets[-1])]


class Table:
    """Rows as parallel arrays: entity index, time, and per metric a value column plus which entities
    support it; ordered by the route's sort."""

    def __init__(
        self,
        entities: list[str],
        names: list[str],
        metrics: list[str],
        series: dict[str, Series],
        supports: dict[str, set[str]],
        frequency: str,
        sort_time: bool,
    ) -> None:
        self.entities, self.names, self.metrics, self.supports = entities, names, metrics, supports
        idx: list[np.ndarray] = []
        times: list[np.ndarray] = []
        cols: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
        for e, entity in enumerate(entities):
            s = series.get(entity)
            if s is None or not s.values:
                continue
            keep = (s.times % DAY_MS == 0) if frequency == "1d" else np.ones(s.times.size, bool)
            present = np.zeros(s.times.size, bool)
            for m in metrics:
                if m in s.values:
                    present |= ~np.isnan(s.values[m])
            keep &= present
            idx.append(np.full(int(keep.sum()), e, np.int64))
            times.append(s.times[keep])
            for m in metrics:
                cols[m].append(s.values[m][keep] if m in s.values else np.full(int(keep.sum()), np.nan))
        self.entity = np.concatenate(idx) if idx else np.zeros(0, np.int64)
        self.time = np.concatenate(times) if times else np.zeros(0, np.int64)
        self.values = {m: (np.concatenate(c) if c else np.zeros(0)) for m, c in cols.items()}
        order = np.lexsort((self.entity, self.time)) if sort_time else np.lexsort((self.time, self.entity))
        self.entity, self.time = self.entity[order], self.time[order]
        self.values = {m: v[order] for m, v in self.values.items()}
        self.sort_time = sort_time

    def __len__(self) -> int:
        return int(self.entity.size)

    def keys(self) -> np.ndarray:
        """A sortable key per row matching the order (entity index and hour packed in one integer)."""
        hours = self.time // HOUR_MS
        return hours * 100_000 + self.entity if self.sort_time else self.entity * 10_000_000 + hours

    def key_of(self, entity: str, time: int) -> int:
        e = int(np.searchsorted(np.array(self.entities, dtype=object), entity))
        return (time // HOUR_MS) * 100_000 + e if self.sort_time else e * 10_000_000 + time // HOUR_MS

    def take(self, rows: np.ndarray) -> Table:
        out = object.__new__(Table)
        out.__dict__.update(self.__dict__)
        out.entity, out.time = self.entity[rows], self.time[rows]
        out.values = {m: v[rows] for m, v in self.values.items()}
        return out

    def limit_per_entity(self, n: int) -> Table:
        """The latest n rows of each entity (order kept)."""
        keep = np.zeros(len(self), bool)
        for e in np.unique(self.entity):
            mine = np.nonzero(self.entity == e)[0]
            keep[mine[np.argsort(self.time[mine])][-n:]] = True
        return self.take(np.nonzero(keep)[0])

    def records(self, entity_key: str, null_as_zero: bool) -> Iterator[dict[str, Any]]:
        formatted = {m: shape.numbers(v) for m, v in self.values.items()}
        for i in range(len(self)):
            entity = self.entities[self.entity[i]]
            row: dict[str, Any] = {entity_key: entity, "time": shape.time_out(self.time[i])}
            for name, m in zip(self.names, self.metrics, strict=True):
                if entity in self.supports[m]:
                    value = formatted[m][i]
                    row[name] = "0" if value is None and null_as_zero else value
            yield row

    def chunks(self, entity_key: str, null_as_zero: bool, end: str, chunk: int = 50_000) -> Iterator[bytes]:
        """The rows as JSON objects, each followed by `end`, built column-wise with Arrow `chunk` rows at a time
        and handed out as the bytes of Arrow's own buffer. Same content and key order as `records`."""
        quoted = pa.array([orjson.dumps(e).decode() for e in self.entities])
        prefix = pa.scalar("{" + orjson.dumps(entity_key).decode() + ":")
        for lo in range(0, len(self), chunk):
            sl = slice(lo, lo + chunk)
            idx = pa.array(self.entity[sl])
            parts = [prefix, quoted.take(idx), pa.scalar(',"time":"'), shape.times(self.time[sl]), pa.scalar('"')]
            for name, m in zip(self.names, self.metrics, strict=True):
                values = shape.number_array(self.values[m][sl])
                written = pc.binary_join_element_wise(pa.scalar('"'), values, pa.scalar('"'), "")
                written = written.fill_null('"0"' if null_as_zero else "null")
                piece = pc.binary_join_element_wise(pa.scalar("," + orjson.dumps(name).decode() + ":"), written, "")
                holds = pa.array(
                    np.isin(self.entity[sl], [i for i, e in enumerate(self.entities) if e in self.supports[m]])
                )
                parts.append(pc.if_else(holds, piece, pa.scalar("")))
            parts.append(pa.scalar("}" + end))
            joined = pc.binary_join_element_wise(*parts, "")
            yield _buffer_bytes(joined)


def respond(request: Request, table: Table, entity_key: str, limit_param: str, deprecated: bool) -> Response:
    q = request.query_params
    fmt = shape.parse_choice(q.get("format"), "format", ("json", "csv", "json_stream"), "json")
    null_as_zero = shape.parse_bool(q.get("null_as_zero"), "null_as_zero", False)
    pretty = shape.parse_bool(q.get("pretty"), "pretty", False)
    limit = shape.parse_int(q.get(limit_param), limit_param, None, 1, 1_000_000)
    if limit is not None:
        table = table.limit_per_entity(limit)
    headers = {"Deprecation": "true"} if deprecated else {}
    if fmt == "json_stream":  # every row, streamed, no paging
        return StreamingResponse(
            table.chunks(entity_key, null_as_zero, "\n"), media_type="application/x-ndjson", headers=headers
        )
    page_size = shape.parse_int(q.get("page_size"), "page_size", 100, 1, shape.MAX_PAGE_SIZE) or 100
    paging_from = shape.parse_choice(q.get("paging_from"), "paging_from", ("start", "end"), "end")
    tokens: shape.PageTokens = api_state(request).cm_tokens
    query = query_key(request)
    keys = table.keys()
    lo, hi = 0, len(table)
    if q.get("next_page_token"):
        entity, time = tokens.decode(q["next_page_token"], query)
        at = table.key_of(entity, time)
        if paging_from == "start":
            lo = int(np.searchsorted(keys, at, side="right"))
        else:
            hi = int(np.searchsorted(keys, at, side="left"))
    if paging_from == "start":
        page, more = np.arange(lo, min(hi, lo + page_size)), lo + page_size < hi
        edge = page[-1] if more else None
    else:
        page, more = np.arange(max(lo, hi - page_size), hi), hi - page_size > lo
        edge = page[0] if more else None
    shown = table.take(page)
    token = url = None
    if edge is not None:
        token = tokens.encode((table.entities[table.entity[edge]], int(table.time[edge])), query)
        # never the caller's api_key: this page may be cached and served to another key (the client adds its own)
        params = [(k, v) for k, v in q.multi_items() if k not in ("next_page_token", "api_key")]
        url = f"{link_base(request)}{request.url.path}?{urlencode([*params, ('next_page_token', token)])}"
    if fmt == "csv":
        rows = list(shown.records(entity_key, null_as_zero))
        out = io.StringIO()
        columns = [entity_key, "time", *table.names]
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        if url:
            headers["x-next-page-url"] = url
        return Response(out.getvalue(), media_type="text/csv", headers=headers)
    data = b"".join(shown.chunks(entity_key, null_as_zero, ","))[:-1]
    more_keys = b""
    if token:
        more_keys = b',"next_page_token":' + orjson.dumps(token) + b',"next_page_url":' + orjson.dumps(url)
    content = b'{"data":[' + data + b"]" + more_keys + b"}"
    if pretty:
        content = orjson.dumps(orjson.loads(content), option=orjson.OPT_INDENT_2)
    return Response(content, media_type="application/json", headers=headers)


class MarketTable(Table):
    """Market funding rows: rate as a string, fixed period and interval, database_time as a time."""

    @staticmethod
    def wrap(table: Table) -> Table:
        out = object.__new__(MarketTable)
        out.__dict__.update(table.__dict__)
        return out

    def take(self, rows: np.ndarray) -> Table:
        return MarketTable.wrap(Table.take(self, rows))

    def limit_per_entity(self, n: int) -> Table:
        return MarketTable.wrap(Table.limit_per_entity(self, n))

    def chunks(self, entity_key: str, null_as_zero: bool, end: str, chunk: int = 50_000) -> Iterator[bytes]:
        tail = end.encode()
        rows = [orjson.dumps(r) + tail for r in self.records(entity_key, null_as_zero)]
        for lo in range(0, len(rows), chunk):
            yield b"".join(rows[lo : lo + chunk])

    def records(self, entity_key: str, null_as_zero: bool) -> Iterator[dict[str, Any]]:
        rates = shape.numbers(self.values["rate"])
        stored = self.values["database_time"].tolist()
        for i in range(len(self)):
            yield {
                "market": self.entities[self.entity[i]],
                "time": shape.time_out(self.time[i]),
                "rate": rates[i],
                "period": "01:00:00",
                "interval": "01:00:00",
                "database_time": shape.time_out(int(stored[i])),
            }
