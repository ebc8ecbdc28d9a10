"""Builds the running parts from Settings (store, keys, service, source, ingestor) and handles signals.

`run`, `backfill`, `live` and `serve` share this, so each command only says what it does with the parts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

from hyperscope.domain.time import HOUR_MS
from hyperscope.errors import ConfigError
from hyperscope.settings import Settings
from hyperscope.store.base import Retention

if TYPE_CHECKING:
    from fastapi import FastAPI

    from hyperscope.ingest import Ingestor
    from hyperscope.pipeline import IngestStatus, WriterHeartbeat
    from hyperscope.service import KeyManager, Service
    from hyperscope.sources.base import Source
    from hyperscope.store.base import Store

log = logging.getLogger("hyperscope.runtime")


def open_store(settings: Settings, *, create: bool, read_only: bool = False) -> Store:
    """The store `settings` names (--store, else the DuckDB file of --data-dir). With `create` this process
    is its writer (PostgreSQL: the one ingest, holding the writer lock; the schema is made or migrated);
    without it, a missing store is an error, never a new empty one."""
    from hyperscope.store import open_store as open_target

    if settings.postgres:
        assert settings.store is not None
        return open_target(settings.store, writer=create)
    if not create and not settings.db_path.exists():
        raise ConfigError(
            f"no hyperscope store at {settings.db_path}; check --data-dir or --store, or create one with "
            "`hyperscope run` or `hyperscope backfill`"
        )
    return open_target(
        settings.db_path, read_only=read_only, memory_mib=settings.duckdb_memory, threads=settings.duckdb_threads
    )


def open_keys(settings: Settings, store: Store | None = None) -> KeyManager:
    """The API keys: a table of the PostgreSQL database, or the key file beside a DuckDB store. With the
    DuckDB store at hand, keys an older build kept inside it move into the key file once. Without it, the
    key file must exist: a mistyped --data-dir never creates one."""
    from hyperscope.service import KeyManager
    from hyperscope.store.keys import open_key_store

    if settings.postgres:
        assert settings.store is not None
        return KeyManager(open_key_store(settings.store), settings.rate_limit_per_minute)
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


def signing_secret(settings: Settings, store: Store) -> bytes:
    """The HMAC secret of cursors, page tokens and download links: the setting, else one kept in the store
    (made by the first process that needs it), so every API process over one store signs alike."""
    if settings.cursor_secret:
        return settings.cursor_secret.encode()
    import secrets

    secret = store.get_meta("cursor_secret")
    if secret is None:
        store.set_meta("cursor_secret", secrets.token_hex(32))
        secret = store.get_meta("cursor_secret")  # another process may have written it first: theirs wins
        assert secret is not None
    return secret.encode()


@dataclass
class Parts:
    """Everything a command runs, built from one Settings."""

    settings: Settings
    store: Store
    keys: KeyManager | None = None
    service: Service | None = None
    secret: bytes = b""
    ingestor: Ingestor | None = None
    source: Source | None = None
    status: IngestStatus = field(default_factory=lambda: _status())
    heartbeat: WriterHeartbeat | None = None

    def close(self) -> None:
        """Checkpoint and close everything; a part that fails to close is logged, never masks how we ended."""
        from hyperscope.errors import HyperscopeError

        steps = [self.heartbeat.stop] if self.heartbeat is not None else []
        steps += [self.source.save] if self.source is not None else []
        steps += [self.keys.store.close] if self.keys is not None else []
        for step in (*steps, self.store.close):
            try:
                step()
            except (HyperscopeError, OSError) as e:
                log.error("while closing: %s", e.log_text if isinstance(e, HyperscopeError) else e)


def _status() -> IngestStatus:
    from hyperscope.pipeline import IngestStatus

    return IngestStatus()


def build(settings: Settings, *, ingest: bool, serve: bool, read_only: bool = False, live: bool = True) -> Parts:
    """Open the store (creating it only when this command ingests) and build what the command needs. An
    ingest records its state in the store for `serve` processes (with its pace when it goes `live`)."""
    store = open_store(settings, create=ingest, read_only=read_only)
    parts = Parts(settings, store)
    try:
        if ingest:
            from hyperscope.ingest import Ingestor
            from hyperscope.pipeline import WriterHeartbeat

            settings.data_dir.mkdir(parents=True, exist_ok=True)  # source checkpoints live here (any store)
            parts.ingestor = Ingestor(store, Retention.from_settings(settings))
            parts.source = make_source(settings)
            parts.status.describe_source = parts.source.health
            pace = stale_after(settings, ingesting=True) if live else None
            parts.heartbeat = WriterHeartbeat(store, parts.status, pace)
            parts.heartbeat.start()
        if serve:
            from hyperscope.service import CursorCodec, Service
            from hyperscope.signing import Signer

            parts.keys = open_keys(settings, None if read_only else store)
            parts.secret = signing_secret(settings, store)
            parts.service = Service(store, CursorCodec(Signer(parts.secret, "cursor", settings.cursor_ttl_seconds)))
    except BaseException:
        store.close()
        raise
    return parts


def make_app(parts: Parts, *, ingesting: bool) -> FastAPI:
    """The API over the parts' service and keys, configured from their settings."""
    from hyperscope.api import ApiConfig, create_app
    from hyperscope.api.observability import Metrics

    assert parts.service is not None and parts.keys is not None
    s = parts.settings
    metrics = Metrics()
    if parts.ingestor is not None:
        parts.ingestor.listeners.append(metrics.observe_ingest)
    config = ApiConfig.from_settings(
        s,
        secret=parts.secret,
        stale_after_seconds=stale_after(s, ingesting=ingesting),
        stale_after_from_writer=not ingesting and s.stale_after_seconds is None,
    )
    return create_app(parts.service, parts.keys, config, metrics, ingest=parts.status if ingesting else None)


def make_source(settings: Settings) -> Source:
    """The source the settings name, not yet attached to a store."""
    if settings.source == "simulator":
        from hyperscope.sources.simulator.source import SimulatedSource

        return SimulatedSource(
            settings.scale,
            settings.seed,
            settings.cadence_seconds,
            settings.checkpoint_path,
            history_ms=int(settings.backfill_hours * HOUR_MS),
            interval_s=settings.live_interval_seconds,
        )
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
    """SIGINT, SIGTERM and SIGHUP as a stop request: the current state update finishes, the store closes
    cleanly, and one line says so.

    A second Ctrl-C quits at once (the store stays consistent: a state update is one transaction).
    `code` is the exit code the signal asks for: 130 for Ctrl-C, 0 for SIGTERM or SIGHUP (an orderly stop).
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
            else:
                sys.stderr.write(f"{signal.Signals(signum).name}: stopping after the current state update\n")
            sys.stderr.flush()
        self.stop.set()
        for callback in self.callbacks:
            callback()

    @property
    def code(self) -> int:
        return 130 if self.received == signal.SIGINT else 0

    @contextmanager
    def installed(self) -> Iterator[Signals]:
        from hyperscope.interrupts import take_early_signal

        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        early = take_early_signal()
        if early is not None:  # a stop asked for during start-up whose exception was lost: asked all the same
            self._handle(early, None)
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


RESTARTS_PER_MINUTE = 5


def serve_workers(settings: Settings, sock: socket.socket, signals: Signals, announce: Callable[[], None]) -> int:
    """Run `settings.workers` API processes on one listening socket (the kernel spreads connections over
    them) and supervise them: a worker that dies is restarted (at most 5 a minute, then everything stops
    with exit 1); SIGINT/SIGTERM are passed on and the workers finish their requests. Returns the exit code.

    Each worker opens its own store connection (a DuckDB store read-only), keys and caches; rate limits and
    key changes are shared through the key store, so N workers act as one server."""
    import time

    def start(index: int) -> int:
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            code = 1
            try:
                code = _worker(settings, sock, index)
            except BaseException:  # noqa: BLE001 - a worker reports and ends; the parent decides what follows
                log.exception("API worker %d failed", index)
            finally:
                os._exit(code)
        return pid

    children = {start(i): i for i in range(settings.workers)}
    announce()
    restarts: list[float] = []
    code = 0

    def forward() -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signals.callbacks.append(forward)
    if signals.stop.is_set():  # a stop while the workers were starting: pass it on now
        forward()
    while children:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            signals.stop.wait(0.2)
            continue
        index = children.pop(pid)
        if signals.stop.is_set():
            continue
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < 60] + [now]
        if len(restarts) > RESTARTS_PER_MINUTE:
            log.error("API workers keep dying; stopping")
            code = 1
            signals.stop.set()
            forward()
            continue
        log.warning("API worker %d exited (status %d); starting it again", index, status)
        children[start(index)] = index
    return code if code else signals.code


def _worker(settings: Settings, sock: socket.socket, index: int) -> int:
    from hyperscope.api.server import make_server

    signals = Signals()
    with signals.installed():
        # several processes may read an embedded DuckDB file only while nothing writes it
        parts = build(settings, ingest=False, serve=True, read_only=not settings.postgres)
        try:
            server = make_server(make_app(parts, ingesting=False))

            def shut_down() -> None:
                server.should_exit = True

            signals.callbacks.append(shut_down)
            if not signals.stop.is_set():  # a stop before the callback was there: never start serving
                server.run(sockets=[sock])
        finally:
            parts.close()
    return 0
