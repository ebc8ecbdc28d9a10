"""The embedded DuckDB store (store.py), layered: connection -> writer -> store."""

from hyperscope.store.base import SCHEMA_VERSION
from hyperscope.store.duckdb.connection import WALLET_KEY
from hyperscope.store.duckdb.store import DuckDBStore, open_store

__all__ = ["SCHEMA_VERSION", "WALLET_KEY", "DuckDBStore", "open_store"]
