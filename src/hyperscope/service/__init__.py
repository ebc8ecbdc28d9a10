"""Read-side facade shared by the API (and later the dashboard and CLI)."""

from hyperscope.service.keys import ApiKey, KeyManager
from hyperscope.service.paging import CursorCodec, Window
from hyperscope.service.queries import Service
from hyperscope.store.base import HistoryQuery, LatestUpdate, Series

__all__ = ["ApiKey", "CursorCodec", "HistoryQuery", "KeyManager", "LatestUpdate", "Series", "Service", "Window"]
