"""The sequence every long-running command shares: build the parts, take the signals over, catch up with the
source (progress bars), serve and/or ingest live, then close everything and leave with the right code."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

from rich.markup import escape

from hyperscope.cli.console import announce, err, log, progress

if TYPE_CHECKING:
    import socket

    from fastapi import FastAPI

    from hyperscope.ingest import IngestResult
    from hyperscope.runtime import Parts, Signals
    from hyperscope.service import KeyManager
    from hyperscope.settings import Settings


class Exit(Exception):
    """Leave with this exit code after the store is closed (the message, if any, is already printed)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@contextmanager
def session(settings: Settings, *, ingest: bool, serve: bool, live: bool = True) -> Iterator[tuple[Parts, Signals]]:
    """The parts of a command and its signals; on the way out everything is closed and `Exit` carries the code
    (1 when ingest stopped for good, else the signal's)."""
    from hyperscope.runtime import Signals, build

    parts = build(settings, ingest=ingest, serve=serve, live=live)
    signals = Signals()
    with signals.installed():
        try:
            yield parts, signals
        except BaseException:
            parts.close()
            raise
        finish(parts, signals)


def finish(parts: Parts, signals: Signals) -> NoReturn:
    """Close everything, then leave with the exit code the way things ended asks for."""
    parts.close()
    if parts.status.failed:
        err.print(f"[red]error:[/] ingest stopped: {escape(parts.status.reason or '')}", soft_wrap=True)
        raise Exit(1)
    raise Exit(signals.code)


def attach(parts: Parts, signals: Signals) -> None:
    """Bind the source to the store, replaying (with a progress bar) what a checkpoint missed.
    A replay writes nothing, so a stop request during one leaves at once."""
    assert parts.source is not None
    bar = None

    def advance(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:  # drawn only when there is something to replay
            bar = progress("resume")
            bar.start()
            bar.add_task("resume", total=total, info="replaying the source up to the store")
        bar.update(bar.task_ids[0], completed=done)
        if signals.stop.is_set():
            raise Exit(signals.code)

    try:
        parts.source.attach(parts.store, progress=advance)
    finally:
        if bar is not None:
            bar.stop()


def catch_up(parts: Parts, signals: Signals) -> int:
    """Ingest the source's backlog with a progress bar; stops between updates on `stop`.
    An ingest that cannot go on is left in `parts.status` (the caller ends with its reason)."""
    from hyperscope.pipeline import IngestFailed, backfill

    assert parts.source is not None and parts.ingestor is not None
    attach(parts, signals)
    with progress("backfill") as bar:
        task = bar.add_task("backfill", total=None, info="")

        def advance(done: int, total: int, result: IngestResult) -> None:
            rejected = f", {parts.status.rejected} rejected" if parts.status.rejected else ""
            bar.update(
                task,
                completed=done,
                total=total,
                info=f"height {result.height}, {result.positions} positions{rejected}",
            )

        if hasattr(parts.source, "progress"):  # a source whose one update is a long sweep shows it too
            sweep = bar.add_task("sweep", total=None, info="(wallets of the sweep)")
            parts.source.progress = lambda done, total: bar.update(sweep, completed=done, total=total)

        try:
            done = backfill(
                parts.source,
                parts.ingestor,
                stop=signals.stop,
                status=parts.status,
                retries=parts.settings.ingest_retries,
                progress=advance,
            )
        except IngestFailed:
            return 0
    if parts.status.rejected:
        err.print(
            f"stored {done} state update(s); {parts.status.rejected} rejected whole (the log says why)", soft_wrap=True
        )
    return done


def live_worker(parts: Parts, stop: threading.Event, max_updates: int | None = None) -> None:
    """The live loop: whatever ends it for good is recorded in the status (and stops a server)."""
    from hyperscope.pipeline import IngestFailed, live

    assert parts.source is not None and parts.ingestor is not None
    try:
        live(
            parts.source,
            parts.ingestor,
            stop,
            status=parts.status,
            retries=parts.settings.ingest_retries,
            max_updates=max_updates,
        )
    except IngestFailed:
        pass  # reason logged and recorded by the pipeline
    except Exception as e:  # the source itself broke: nothing more will be ingested
        log.exception("live ingest stopped")
        parts.status.fail(f"{type(e).__name__}: {e}")


def first_key(keys: KeyManager) -> str | None:
    """A key for a brand-new installation; never again once any key was made (revoking all is a choice)."""
    if keys.ever_created() == 0:
        token, _ = keys.create("first-run")
        return token
    return None


def serve_until_stopped(
    parts: Parts,
    sock: socket.socket,
    application: FastAPI,
    signals: Signals,
    key: str | None,
    worker: threading.Thread | None = None,
) -> None:
    from hyperscope.api.server import make_server

    assert parts.keys is not None
    server = make_server(application)

    def shut_down(*_: object) -> None:
        server.should_exit = True

    signals.callbacks.append(shut_down)
    parts.status.on_failure.append(shut_down)
    if signals.stop.is_set():  # a stop that came before the callback was there: never start serving
        return
    if worker is not None:
        worker.start()
    announce(sock, key, parts.keys, parts.secret)
    server.run(sockets=[sock])
