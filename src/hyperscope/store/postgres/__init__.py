"""The PostgreSQL store (store.py), layered: connections -> schema and partitions -> writer -> store."""

from hyperscope.store.postgres.connection import NOTIFY_CHANNEL, WRITER_LOCK
from hyperscope.store.postgres.store import PostgresStore

__all__ = ["NOTIFY_CHANNEL", "WRITER_LOCK", "PostgresStore"]
