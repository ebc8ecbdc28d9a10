"""The live stream: one server-sent event per new state update (`id` = its height), resumable with
`Last-Event-ID`. Each client waits on the newest height only (a queue of one: a slow client skips to the
newest update, never piles up), so the stream works the same in every `serve --workers` process and over
PostgreSQL, where the writer's notifications move `latest()`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import orjson

from hyperscope.store.base import LatestUpdate

POLL_SECONDS = 0.25  # how often a stream looks at the newest height (a read of memory, not the database)
KEEPALIVE_SECONDS = 15.0


async def updates(
    latest: Callable[[], LatestUpdate | None],
    last_seen: int | None,
    disconnected: Callable[[], asyncio.Future[bool] | object],
    poll: float = POLL_SECONDS,
) -> AsyncIterator[bytes]:
    """Events for the updates after `last_seen` (the client's Last-Event-ID), then each new one as it lands."""
    yield b"retry: 2000\n\n"
    seen = last_seen
    quiet = 0.0
    while True:
        if await disconnected():  # type: ignore[misc]
            return
        update = latest()
        if update is not None and (seen is None or update.height > seen):
            data = orjson.dumps({"height": update.height, "time": update.time})
            yield b"event: update\nid: %d\ndata: %s\n\n" % (update.height, data)
            seen, quiet = update.height, 0.0
        elif quiet >= KEEPALIVE_SECONDS:
            yield b": keep-alive\n\n"
            quiet = 0.0
        await asyncio.sleep(poll)
        quiet += poll
