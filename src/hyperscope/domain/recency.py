"""Recency windows (`positionRecencyTimeframe`, `openedWithin`): only positions opened within count."""

from __future__ import annotations

from hyperscope.domain.time import DAY_MS

TIMEFRAMES: dict[str, int | None] = {"all": None, "24h": DAY_MS, "7d": 7 * DAY_MS, "30d": 30 * DAY_MS}
