"""Builds the running parts from Settings (store, keys, service, source, ingestor) and handles signals.

`run`, `backfill`, `live` and `serve` share this, so each command only says what it does with the parts.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

from hyperscope.errors import ConfigError
from hyperscope.settings import Settings
from hyperscope.store.base import Retention

if TYPE_CHECKING:
    from hyperscope.ingest import Ingestor
    from hyperscope.pipeline import IngestStatus
    from hyperscope.service import KeyManager, Service
    from hyperscope.sources.base import Source
    from hyperscope.store.base import Store

log = logging.getLogger("hyperscope.runtime")


def open_store(settings: Settings, *, create: bool) -> Store:
    """The store of `settings.data_dir`; without `create`, a missing store is an error, not a new empty one."""
    from hyperscope.store import open_store as open_duckdb

    if not create and not settings.db_path.exists():
        raise ConfigError(
            f"no hyperscope store in {settings.data_dir}; check --data-dir, or create one with "
            "`hyperscope run` or `hyperscope backfill`"
        )
    return open_duckdb(settings.db_path, memory_mib=settings.duckdb_memory, threads=settings.duckdb_threads)


def open_keys(settings: Settings, store: Store | None = None) -> KeyManager:
    """The key file of `settings.data_dir`. With the store at hand, keys an older build kept inside the store
    move into the key file once. Without it, the key file must exist: a mistyped --data-dir never creates one.
    """
    from hyperscope.service import KeyManager
    from hyperscope.store.keys import open_key_store

    if store is None and not settings.keys_path.exists():
        if settings.db_path.exists():  # an older build's store that has not been run since: move its keys
            legacy = open_store(settings, create=False)
            try:
                return open_keys(settings, legacy)
            finally:
                legacy.close()
        raise ConfigError(
            f"no hyperscope data in {settings.data_dir}; check --data-dir (keys live beside the store that "
            "`hyperscope run` creates)"
        )
    new = not settings.keys_path.exists()
    key_store = open_key_store(settings.keys_path)
    if new and store is not None:
        rows = store.legacy_keys()
        if rows:
            key_store.insert(rows)
            log.info("moved %d API key(s) from the store into %s", len(rows), settings.keys_path)
    return KeyManager(key_store, settings.rate_limit_per_minute)


def cursor_secret(settings: Settings, store: Store) -> bytes:
    if settings.cursor_secret:
        return settings.cursor_secret.encode()
    import secrets

    secret = store.get_meta("cursor_secret")
    if secret is None:
        secret = secrets.token_hex(32)
        store.set_meta("cursor_secret", secret)
    return secret.encode()


@dataclass
class Parts:
    """Everything a command runs, built from one Settings."""

    settings: Settings
    store: Store
    keys: KeyManager | None = None
    service: Service | None = None
    ingestor: Ingestor | None = None
    source: Source | None = None
    status: IngestStatus = field(default_factory=lambda: _status())

    def close(self) -> None:
        """Checkpoint and close everything; a part that fails to close is logged, never masks how we ended."""
        from hyperscope.errors import HyperscopeError

        steps = [self.source.save] if self.source is not None else []
        steps += [self.keys.store.close] if self.keys is not None else []
        for step in (*steps, self.store.close):
            try:
                step()
            except (HyperscopeError, OSError) as e:
                log.error("while closing: %s", e.log_text if isinstance(e, HyperscopeError) else e)


def _status() -> IngestStatus:
    from hyperscope.pipeline import IngestStatus

    return IngestStatus()


def build(settings: Settings, *, ingest: bool, serve: bool) -> Parts:
    """Open the store (creating it only when this command ingests) and build what the command needs."""
    store = open_store(settings, create=ingest)
    parts = Parts(settings, store)
    try:
        if ingest:
            from hyperscope.ingest import Ingestor

            parts.ingestor = Ingestor(store, Retention.from_settings(settings))
            parts.source = make_source(settings)
            parts.status.describe_source = parts.source.health
        if serve:
            from hyperscope.service import CursorCodec, Service

            parts.keys = open_keys(settings, store)
            parts.service = Service(store, CursorCodec(cursor_secret(settings, store), settings.cursor_ttl_seconds))
    except BaseException:
        store.close()
        raise
    return parts


def make_source(settings: Settings) -> Source:
    """The source the settings name, not yet attached to a store."""
    if settings.source == "simulator":
        from hyperscope.sources.simulator.source import SimulatedSource

        return SimulatedSource(
            settings.scale, settings.seed, settings.cadence_seconds, settings.checkpoint_path,
            history_ms=int(settings.backfill_hours * 3_600_000), interval_s=settings.live_interval_seconds,
        )  # fmt: skip
    if settings.source in ("node", "replay"):
        from hyperscope.sources.hyperliquid.node import NodeSource

        assert settings.node_data is not None  # checked by Settings
        return NodeSource.from_settings(settings)
    from hyperscope.sources.hyperliquid.info import InfoSource

    return InfoSource.from_settings(settings)


NODE_SNAPSHOT_SECONDS = 1200  # a node writes a snapshot every 10,000 blocks: 12-20 minutes


def stale_after(settings: Settings, *, ingesting: bool) -> float | None:
    """Lag past which /health says stale: the setting, else 3 x the expected wall time between updates
    (a node's snapshots, an info sweep, the simulator's interval); None for a replay, which is history."""
    if settings.stale_after_seconds is not None:
        return settings.stale_after_seconds
    if ingesting and settings.source == "replay":
        return None
    if ingesting and settings.source in ("node", "info"):
        return 3.0 * max(NODE_SNAPSHOT_SECONDS, settings.live_interval_seconds)
    interval = settings.live_interval_seconds if ingesting else settings.cadence_seconds
    return max(3 * interval, 15.0)


class Signals:
    """SIGINT and SIGTERM as a stop request: the current state update finishes, the store closes cleanly.

    A second Ctrl-C quits at once (the store stays consistent: a state update is one transaction).
    `code` is the exit code the signal asks for: 130 for Ctrl-C, 0 for SIGTERM (an orderly stop).
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.received: int | None = None
        self.callbacks: list[Callable[[], None]] = []

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            sys.stderr.write("\ninterrupted again: quitting now\n")
            sys.stderr.flush()
            os._exit(130)
        if self.received is None:
            self.received = signum
            if signum == signal.SIGINT:
                sys.stderr.write("\nstopping after the current state update (Ctrl-C again to quit now)\n")
                sys.stderr.flush()
        self.stop.set()
        for callback in self.callbacks:
            callback()

    @property
    def code(self) -> int:
        return 130 if self.received == signal.SIGINT else 0

    @contextmanager
    def installed(self) -> Iterator[Signals]:
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
