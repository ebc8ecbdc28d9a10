"""The commands that ingest and serve: run, backfill, live, ingest, serve, simulate, status."""

from __future__ import annotations

import threading
from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer

from hyperscope.cli.console import err, out, print_status, progress
from hyperscope.cli.entry import app
from hyperscope.cli.lifecycle import (
    Exit,
    attach,
    catch_up,
    first_key,
    live_worker,
    serve_until_stopped,
    session,
)
from hyperscope.cli.options import PLACE, SERVER, SIMULATOR, SOURCE, with_settings
from hyperscope.domain.time import HOUR_MS
from hyperscope.errors import ConfigError
from hyperscope.settings import Settings

Updates = Annotated[int | None, typer.Option(min=1, help="Stop after this many updates.")]


@app.command()
@with_settings(*SOURCE, *SIMULATOR, "live_interval_seconds", *SERVER, *PLACE, folder=True)
def run(settings: Settings) -> None:
    """Everything in one process: ingest what the source has, keep ingesting live, serve the API."""
    from hyperscope.api.server import bind
    from hyperscope.runtime import make_app

    with (
        closing(bind(settings.host, settings.port)) as sock,
        session(settings, ingest=True, serve=True) as (
            parts,
            signals,
        ),
    ):
        catch_up(parts, signals)
        if signals.stop.is_set() or parts.status.failed:
            return
        assert parts.keys is not None
        key = first_key(parts.keys)
        worker = threading.Thread(target=live_worker, args=(parts, signals.stop), name="live-ingest")
        try:
            serve_until_stopped(parts, sock, make_app(parts, ingesting=True), signals, key, worker)
        finally:
            signals.stop.set()
            if worker.is_alive():
                worker.join()


@app.command("backfill")
@with_settings(*SOURCE, *SIMULATOR, *PLACE, folder=True)
def backfill_cmd(settings: Settings) -> None:
    """Ingest everything the source has up to now, as fast as it can (simulated history, or every snapshot of
    a node folder with --source replay DIR); resumes where it stopped."""
    with session(settings, ingest=True, serve=False, live=False) as (parts, signals):
        catch_up(parts, signals)
        if not parts.status.failed:
            print_status(parts.store)


@app.command("live")
@with_settings(*SOURCE, *SIMULATOR, "live_interval_seconds", *PLACE, folder=True)
def live_cmd(settings: Settings, updates: Updates = None) -> None:
    """Run the live ingest loop (no API): each state update as the source makes it due."""
    with session(settings, ingest=True, serve=False) as (parts, signals):
        attach(parts, signals)
        live_worker(parts, signals.stop, updates)
        print_status(parts.store)


@app.command()
@with_settings(*SOURCE, *SIMULATOR, "live_interval_seconds", *PLACE, folder=True)
def ingest(settings: Settings) -> None:
    """The one writer: ingest the source's backlog, then keep ingesting live (no API; `hyperscope serve`
    processes read the same store). Over PostgreSQL a second writer is refused."""
    from hyperscope.runtime import signing_secret

    with session(settings, ingest=True, serve=False) as (parts, signals):
        signing_secret(settings, parts.store)  # made once here, so every API process signs alike
        catch_up(parts, signals)
        if not signals.stop.is_set() and not parts.status.failed:
            err.print(f"ingesting live into {parts.store.path} (Ctrl-C to stop)", soft_wrap=True)
            live_worker(parts, signals.stop)


@app.command()
@with_settings(*SERVER, *PLACE, "workers")
def serve(settings: Settings) -> None:
    """Serve the API over an existing store (no ingest), in --workers processes sharing one port. Any number
    of `serve` processes, on any machines, can read one PostgreSQL store; a DuckDB store is opened read-only
    by each worker when there are several (and then nothing may write it)."""
    from hyperscope.api.server import bind
    from hyperscope.cli.console import announce
    from hyperscope.runtime import Signals, build, make_app, serve_workers

    with closing(bind(settings.host, settings.port)) as sock:
        if settings.workers > 1:
            parts = build(settings, ingest=False, serve=True)
            assert parts.keys is not None
            keys, key, secret = parts.keys, first_key(parts.keys), parts.secret
            parts.close()  # the workers open their own (nothing open may cross a fork)
            signals = Signals()
            with signals.installed():
                raise Exit(serve_workers(settings, sock, signals, lambda: announce(sock, key, keys, secret)))
        with session(settings, ingest=False, serve=True) as (parts, signals):
            assert parts.keys is not None
            serve_until_stopped(parts, sock, make_app(parts, ingesting=False), signals, first_key(parts.keys))


@app.command()
@with_settings(*SIMULATOR)
def simulate(
    settings: Settings,
    write_node_dir: Annotated[str, typer.Option(help="Write the market as a node's data folder here (new or empty).")],
) -> None:
    """Write simulated history as a Hyperliquid node's files (snapshots, fills, ledger events, market data),
    for `hyperscope backfill --source replay DIR`."""
    from hyperscope.sources.simulator.nodewriter import write_node_dir as write
    from hyperscope.sources.simulator.source import SimulatedSource

    root = Path(write_node_dir)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(f"--write-node-dir: {root} exists and is not an empty folder")
    root.mkdir(parents=True, exist_ok=True)
    source = SimulatedSource(
        settings.scale,
        settings.seed,
        settings.cadence_seconds,
        root / ".checkpoint.npz",
        history_ms=int(settings.backfill_hours * HOUR_MS),
    )
    with progress("simulate") as bar:
        task = bar.add_task("simulate", total=None, info=f"writing {root}")
        written = write(root, source, lambda done, total: bar.update(task, completed=done, total=total))
    out.print(f"wrote {written} snapshots of the simulated market to {root}", soft_wrap=True)


@app.command()
@with_settings(*PLACE)
def status(settings: Settings) -> None:
    """Heights, counts and lag of the store (over PostgreSQL also while ingest and serve run)."""
    from hyperscope.runtime import open_store

    with closing(open_store(settings, create=False)) as store:
        print_status(store)
