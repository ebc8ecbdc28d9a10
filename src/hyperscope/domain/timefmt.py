"""Timestamps: epoch milliseconds inside, ISO 8601 UTC with milliseconds and Z outside."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_ms(epoch_ms: int) -> str:
    """`1700000000000` -> `2023-11-14T22:13:20.000Z`."""
    dt = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(round(dt.timestamp() * 1000))


def now_ms() -> int:
    return to_ms(datetime.now(tz=UTC))
