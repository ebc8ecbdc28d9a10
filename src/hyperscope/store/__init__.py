"""The only code that writes SQL: DuckDB now, PostgreSQL behind the same interface later."""

from hyperscope.store.base import LatestUpdate, Store
from hyperscope.store.duckdb import DuckDBStore, open_store

__all__ = ["DuckDBStore", "LatestUpdate", "Store", "open_store"]
