"""The only code that writes SQL: the embedded DuckDB store and the PostgreSQL store, behind one interface."""

from __future__ import annotations

from pathlib import Path

from hyperscope.errors import ConfigError
from hyperscope.store.base import LatestUpdate, Store
from hyperscope.store.duckdb import DuckDBStore

__all__ = ["DuckDBStore", "LatestUpdate", "Store", "is_postgres", "open_store"]


def is_postgres(target: Path | str) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def duckdb_path(target: Path | str) -> Path | str:
    """The file a DuckDB target names: a path, `duckdb:///abs/path.duckdb` or `duckdb://relative.duckdb`."""
    if isinstance(target, str) and target.startswith("duckdb://"):
        rest = target.removeprefix("duckdb://")
        if not rest:
            raise ConfigError("--store duckdb:// needs a file: duckdb:///data/hyperscope.duckdb")
        return rest
    return target


def open_store(
    target: Path | str, *, read_only: bool = False, memory_mib: int = 1024, threads: int = 2, writer: bool | None = None
) -> Store:
    """The store a path or URL names: `postgresql://user@host/db` or a DuckDB file (`duckdb:///path` or a path).

    PostgreSQL: `writer` (default: not `read_only`) takes the one-writer lock and creates or migrates the
    schema; a reader needs an existing hyperscope database."""
    if is_postgres(target):
        from hyperscope.store.postgres import PostgresStore

        write = (not read_only) if writer is None else writer
        return PostgresStore(str(target), writer=write, create=write)
    if isinstance(target, str) and "://" in target and not target.startswith("duckdb://"):
        raise ConfigError(f"unknown store {target.split('://')[0]}://; expected duckdb:///file or postgresql://...")
    return DuckDBStore(duckdb_path(target), read_only=read_only, memory_mib=memory_mib, threads=threads)
