"""The one query builder behind /positions (position history), for both SQL dialects.

A lifecycle matches the window [start, end] when it was open at some moment of it: an open lifecycle when it
opened by `end`, a closed one when it also closed at or after `start` (a bare column comparison, so a scan
skips older row groups). Rows come in the query's order, ties broken by the lifecycle key, after the
cursor's (sort value, key), at most `limit` of them. Each store adds its own columns to the two branches
(DuckDB reads only narrow columns and fetches the page by row id; PostgreSQL reads the rows at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hyperscope.domain.ids import wallet_key
from hyperscope.store.base import HISTORY_SORT, HistoryQuery


@dataclass(frozen=True)
class Dialect:
    mark: str  # the parameter placeholder
    any_list: bool  # `col = ANY(<one list parameter>)` (PostgreSQL) or a constant `IN (?, ...)` list (DuckDB)
    # closed lifecycles also compare the address itself (else only its integer wallet key: the store checks the
    # page's rows); open ones always compare only the key
    full_address: bool
    branch_limits: bool = False  # each branch sorts and limits itself, so an index in that order can serve it
    open_rows: str = "positions_open"  # what the open branch reads (an address filter: always positions_open)


DUCKDB = Dialect("?", any_list=False, full_address=False)
# PostgreSQL's open branch reads open positions alone, without joining their lifecycles (schema.OPEN_ROWS_VIEW),
# except for an address filter, where the lifecycles' wallet index finds the few rows first
POSTGRES = Dialect("%s", any_list=True, full_address=True, branch_limits=True, open_rows="open_rows")


def _member(column: str, values: list[Any], d: Dialect) -> tuple[str, list[Any]]:
    if len(values) == 1:  # an equality, which an index can also serve in its order (a list it cannot)
        return f"{column} = {d.mark}", values
    if d.any_list:
        return f"{column} = ANY({d.mark})", [values]
    return f"{column} IN ({', '.join([d.mark] * len(values))})", values


def _condition(query: HistoryQuery, d: Dialect, full_address: bool) -> tuple[str, list[Any]]:
    """The WHERE condition (and its parameters) of the query's filters and cursor, shared by both branches."""
    sort = HISTORY_SORT[query.order_by]
    where, params = [f"open_time <= {d.mark}"], [query.end]
    if query.coins is not None:
        clause, values = _member("coin", list(query.coins), d)
        where.append(clause)
        params += values
    if query.addresses is not None:
        clause, values = _member("wallet", [wallet_key(a) for a in query.addresses], d)
        if full_address:
            address, names = _member("address", list(query.addresses), d)
            clause, values = f"{clause} AND {address}", values + names
        where.append(clause)
        params += values
    if query.segment is not None:
        where.append(f"(size_segment = {d.mark} OR pnl_segment = {d.mark})")
        params += [query.segment, query.segment]
    if query.after is not None:
        op = "<" if query.descending else ">"
        where.append(f"({sort} {op} {d.mark} OR ({sort} = {d.mark} AND key {op} {d.mark}))")
        params += [query.after[0], query.after[0], query.after[1]]
    return " AND ".join(where), params


def history_page(query: HistoryQuery, d: Dialect, open_extra: str, closed_extra: str) -> tuple[str, list[Any]]:
    """SQL and parameters for one page: rows of (key, sort_key, closed, *extra columns)."""
    sort = HISTORY_SORT[query.order_by]
    open_condition, open_params = _condition(query, d, full_address=False)
    open_rows = d.open_rows if query.addresses is None else "positions_open"
    condition, params = _condition(query, d, full_address=d.full_address)
    branches: list[str] = []
    branch_params: list[Any] = []
    if query.open is not False:
        branches.append(
            f"SELECT key, {sort} AS sort_key, false AS closed, {open_extra} FROM {open_rows} WHERE {open_condition}"
        )
        branch_params += open_params
    if query.open is not True:
        branches.append(
            f"SELECT key, {sort} AS sort_key, true AS closed, {closed_extra} "
            f"FROM positions_closed WHERE close_time >= {d.mark} AND {condition}"
        )
        branch_params += [query.start, *params]
    direction = "DESC" if query.descending else "ASC"
    order = f"ORDER BY sort_key {direction}, key {direction} LIMIT {d.mark}"
    if d.branch_limits and len(branches) > 1:
        # the first `limit` rows of the union are among each branch's first `limit`: a branch that sorts
        # itself lets the planner walk an index in that order and stop early (a merge over partitions)
        branches = [f"({b} {order})" for b in branches]
        branch_params = [*open_params, query.limit, query.start, *params, query.limit]
    sql = f"SELECT * FROM ({' UNION ALL '.join(branches)}) AS t {order}"
    return sql, [*branch_params, query.limit]
