"""`hyperscope ...`: thin commands over the library.

User mistakes end with one line and exit 2; an ingest that stopped for good ends with one line and exit 1;
Ctrl-C ends with one line and exit 130; SIGTERM stops in order (the state update in progress finishes,
the store closes) and exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from hyperscope.domain.time import HOUR_MS
from hyperscope.domain.timefmt import iso_ms, now_ms
from hyperscope.errors import ConfigError, HyperscopeError
from hyperscope.service.keys import SCOPES
from hyperscope.settings import Settings, describe_error

if TYPE_CHECKING:  # the heavy modules load only in the commands that use them
    import socket

    from fastapi import FastAPI

    from hyperscope.ingest import IngestResult
    from hyperscope.runtime import Parts, Signals
    from hyperscope.service import KeyManager
    from hyperscope.store.base import Store

app = typer.Typer(
    help="hyperscope: Hyperliquid positioning analytics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Create, list and revoke API keys (also while hyperscope runs).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
out = Console()
err = Console(stderr=True)
log = logging.getLogger("hyperscope.cli")

Scale = Annotated[str | None, typer.Option(help="Simulator scale: tiny, small or bench.")]
Seed = Annotated[int | None, typer.Option(help="Simulator seed (the same seed gives the same market).")]
Hours = Annotated[float | None, typer.Option(help="Hours of history to generate on an empty store (0-2160).")]
Cadence = Annotated[int | None, typer.Option(help="Market seconds between state updates (60-86400).")]
Interval = Annotated[float | None, typer.Option(help="Wall seconds between live updates (>= 0.1).")]
Host = Annotated[str | None, typer.Option(help="Listen address (an IP address).")]
Port = Annotated[int | None, typer.Option(help="Listen port (1-65535; 0 picks a free one).")]
DataDir = Annotated[str | None, typer.Option(help="Where the store and the key file live.")]
StoreUrl = Annotated[
    str | None,
    typer.Option("--store", help="duckdb:///path/file.duckdb (default: the file in --data-dir) or "
                 "postgresql://user:password@host:5432/database."),
]  # fmt: skip
FilesUrl = Annotated[str | None, typer.Option("--files", help="s3://bucket/prefix for export files (default: "
                                              "the exports folder in --data-dir).")]  # fmt: skip
S3Endpoint = Annotated[str | None, typer.Option(help="The S3-compatible service for --files (default: AWS).")]
Workers = Annotated[int | None, typer.Option(help="API server processes sharing the port (1-64).")]
PublicUrl = Annotated[
    str | None,
    typer.Option(
        help="Absolute base URL clients reach the API at (download links start with it); default: the request's host."
    ),
]
SourceKind = Annotated[str | None, typer.Option("--source", help="simulator (default), node, replay or info.")]
NodeData = Annotated[str | None, typer.Option(help="The node's data folder (~/hl/data) for --source node.")]
Folder = Annotated[str | None, typer.Argument(help="The folder to replay (--source replay) or watch (--source node).",
                                              show_default=False)]  # fmt: skip
CatchUp = Annotated[str | None, typer.Option(help="--source node after downtime: oldest (every snapshot) or newest.")]
InfoUrl = Annotated[str | None, typer.Option(help="--source info: the info server (local node or public API).")]
WatchList = Annotated[str | None, typer.Option(help="--source info: addresses to follow (text or leaderboard file).")]
Leaderboard = Annotated[str | None, typer.Option(help="A stats leaderboard file: wallets' all-time PnL and volume.")]
MarketUrl = Annotated[str | None, typer.Option(help="Where node and info sources fetch marks and funding (Info API).")]


def _source_options(
    source: str | None, folder: str | None, node_data: str | None, catch_up: str | None = None,
    info_url: str | None = None, watch_list: str | None = None, leaderboard: str | None = None,
    market_info_url: str | None = None,
) -> dict[str, object]:  # fmt: skip
    """Settings of the source flags; a positional folder is the node data folder."""
    if folder is not None and node_data is not None and folder != node_data:
        raise ConfigError("give the node's data folder once: as the argument or as --node-data")
    return {"source": source, "node_data": folder or node_data, "catch_up": catch_up, "info_url": info_url,
            "watch_list": watch_list, "leaderboard": leaderboard, "market_info_url": market_info_url}  # fmt: skip


class Exit(Exception):
    """Leave with this exit code after the store is closed (the message, if any, is already printed)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _settings(**overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(**values)  # type: ignore[arg-type]
    except ValidationError as e:
        raise ConfigError(describe_error(e)) from None
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return settings


def _progress(label: str) -> Progress:
    columns = (TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.completed}/{task.total} updates"),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
    return Progress(*columns, console=err, transient=False)


def _attach(parts: Parts, signals: Signals) -> None:
    """Bind the source to the store, replaying (with a progress bar) what a checkpoint missed.
    A replay writes nothing, so a stop request during one leaves at once."""
    assert parts.source is not None
    bar: Progress | None = None

    def advance(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:  # drawn only when there is something to replay
            bar = _progress("resume")
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


def _catch_up(parts: Parts, signals: Signals) -> int:
    """Ingest the source's backlog with a progress bar; stops between updates on `stop`.
    An ingest that cannot go on is left in `parts.status` (the caller ends with its reason)."""
    from hyperscope.pipeline import IngestFailed, backfill

    assert parts.source is not None and parts.ingestor is not None
    _attach(parts, signals)
    stop = signals.stop
    with _progress("backfill") as bar:
        task = bar.add_task("backfill", total=None, info="")

        def advance(done: int, total: int, result: IngestResult) -> None:
            rejected = f", {parts.status.rejected} rejected" if parts.status.rejected else ""
            bar.update(task, completed=done, total=total,
                       info=f"height {result.height}, {result.positions} positions{rejected}")  # fmt: skip

        if hasattr(parts.source, "progress"):  # a source whose one update is a long sweep shows it too
            sweep = bar.add_task("sweep", total=None, info="(wallets of the sweep)")
            parts.source.progress = lambda done, total: bar.update(sweep, completed=done, total=total)

        try:
            done = backfill(parts.source, parts.ingestor, stop=stop, status=parts.status,
                            retries=parts.settings.ingest_retries, progress=advance)  # fmt: skip
        except IngestFailed:
            return 0
    if parts.status.rejected:
        err.print(f"stored {done} state update(s); {parts.status.rejected} rejected whole (the log says why)",
                  soft_wrap=True)  # fmt: skip
    return done


def _first_key(keys: KeyManager) -> str | None:
    """A key for a brand-new installation; never again once any key was made (revoking all is a choice)."""
    if keys.ever_created() == 0:
        token, _ = keys.create("first-run")
        return token
    return None


def _announce(sock: socket.socket, key: str | None, keys: KeyManager) -> None:
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}"
    say = out.print  # soft_wrap: a URL or key is never split across lines, whatever the terminal width
    say(f"\n[bold green]hyperscope is running[/] at [bold]{url}[/]  (docs: {url}/docs)", soft_wrap=True)
    if key:
        say("API key (shown once, keep it):", soft_wrap=True)
        say(f"[bold]{key}[/]", soft_wrap=True)
        say(f'Try: curl -H "Authorization: Bearer {key}" {url}/api/external/positions/coins', soft_wrap=True)
    else:
        say(f"{keys.active_count()} active API key(s); create one with `hyperscope keys create` "
            "(works while this runs).", soft_wrap=True)  # fmt: skip
    say("Press Ctrl-C to stop.\n", soft_wrap=True)


def _serve_until_stopped(parts: Parts, sock: socket.socket, application: FastAPI, signals: Signals,
                         key: str | None, worker: threading.Thread | None = None) -> None:  # fmt: skip
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
    _announce(sock, key, parts.keys)
    server.run(sockets=[sock])


def _live_worker(parts: Parts, stop: threading.Event, max_updates: int | None = None) -> None:
    """The live loop in a thread: whatever ends it for good is recorded in the status (and stops the server)."""
    from hyperscope.pipeline import IngestFailed, live

    assert parts.source is not None and parts.ingestor is not None
    try:
        live(parts.source, parts.ingestor, stop, status=parts.status, retries=parts.settings.ingest_retries,
             max_updates=max_updates)  # fmt: skip
    except IngestFailed:
        pass  # reason logged and recorded by the pipeline
    except Exception as e:  # the source itself broke: nothing more will be ingested
        log.exception("live ingest stopped")
        parts.status.fail(f"{type(e).__name__}: {e}")


def _finish(parts: Parts, signals: Signals) -> NoReturn:
    """Close everything, then leave with the exit code the way things ended asks for."""
    parts.close()
    if parts.status.failed:
        err.print(f"[red]error:[/] ingest stopped: {escape(parts.status.reason or '')}", soft_wrap=True)
        raise Exit(1)
    raise Exit(signals.code)


@app.command()
def run(
    folder: Folder = None, source: SourceKind = None, node_data: NodeData = None, catch_up: CatchUp = None,
    info_url: InfoUrl = None, watch_list: WatchList = None, leaderboard: Leaderboard = None,
    market_info_url: MarketUrl = None,
    scale: Scale = None, seed: Seed = None, hours: Hours = None, cadence: Cadence = None, interval: Interval = None,
    host: Host = None, port: Port = None, data_dir: DataDir = None, public_url: PublicUrl = None,
    store: StoreUrl = None, files: FilesUrl = None, s3_endpoint_url: S3Endpoint = None,
) -> None:  # fmt: skip
    """Everything in one process: ingest what the source has, keep ingesting live, serve the API."""
    from hyperscope.api.server import bind
    from hyperscope.runtime import Signals, build, make_app

    settings = _settings(scale=scale, seed=seed, backfill_hours=hours, cadence_seconds=cadence,
                         live_interval_seconds=interval, host=host, port=port, data_dir=data_dir,
                         public_url=public_url, store=store, files=files, s3_endpoint_url=s3_endpoint_url,
                         **_source_options(source, folder, node_data, catch_up, info_url, watch_list,
                                           leaderboard, market_info_url))  # fmt: skip
    sock = bind(settings.host, settings.port)
    try:
        parts = build(settings, ingest=True, serve=True)
        signals = Signals()
        with signals.installed():
            try:
                _catch_up(parts, signals)
                if not signals.stop.is_set() and not parts.status.failed:
                    key = _first_key(parts.keys)  # type: ignore[arg-type]
                    worker = threading.Thread(target=_live_worker, args=(parts, signals.stop), name="live-ingest")
                    try:
                        _serve_until_stopped(parts, sock, make_app(parts, ingesting=True), signals, key, worker)
                    finally:
                        signals.stop.set()
                        if worker.is_alive():
                            worker.join()
            except BaseException:
                parts.close()
                raise
            _finish(parts, signals)
    finally:
        sock.close()


@app.command("backfill")
def backfill_cmd(
    folder: Folder = None, source: SourceKind = None, node_data: NodeData = None, leaderboard: Leaderboard = None,
    info_url: InfoUrl = None, watch_list: WatchList = None, market_info_url: MarketUrl = None,
    scale: Scale = None, seed: Seed = None, hours: Hours = None, cadence: Cadence = None, data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:  # fmt: skip
    """Ingest everything the source has up to now, as fast as it can (simulated history, or every snapshot of
    a node folder with --source replay DIR); resumes where it stopped."""
    from hyperscope.runtime import Signals, build

    settings = _settings(scale=scale, seed=seed, backfill_hours=hours, cadence_seconds=cadence, data_dir=data_dir,
                         store=store, **_source_options(source, folder, node_data, info_url=info_url,
                                                        watch_list=watch_list, leaderboard=leaderboard,
                                                        market_info_url=market_info_url))  # fmt: skip
    parts = build(settings, ingest=True, serve=False, live=False)
    signals = Signals()
    with signals.installed():
        try:
            _catch_up(parts, signals)
            if not parts.status.failed:
                _print_status(parts.store)
        except BaseException:
            parts.close()
            raise
        _finish(parts, signals)


@app.command("live")
def live_cmd(
    folder: Folder = None, source: SourceKind = None, node_data: NodeData = None, catch_up: CatchUp = None,
    info_url: InfoUrl = None, watch_list: WatchList = None, leaderboard: Leaderboard = None,
    market_info_url: MarketUrl = None,
    scale: Scale = None, seed: Seed = None, cadence: Cadence = None, interval: Interval = None,
    updates: Annotated[int | None, typer.Option(min=1, help="Stop after this many updates.")] = None,
    data_dir: DataDir = None, store: StoreUrl = None,
) -> None:  # fmt: skip
    """Run the live ingest loop (no API): each state update as the source makes it due."""
    from hyperscope.runtime import Signals, build

    settings = _settings(scale=scale, seed=seed, cadence_seconds=cadence, live_interval_seconds=interval,
                         data_dir=data_dir, store=store, **_source_options(source, folder, node_data, catch_up,
                                                                           info_url, watch_list, leaderboard,
                                                                           market_info_url))  # fmt: skip
    parts = build(settings, ingest=True, serve=False)
    signals = Signals()
    with signals.installed():
        try:
            _attach(parts, signals)
            _live_worker(parts, signals.stop, updates)
            _print_status(parts.store)
        except BaseException:
            parts.close()
            raise
        _finish(parts, signals)


@app.command()
def ingest(
    folder: Folder = None, source: SourceKind = None, node_data: NodeData = None, catch_up: CatchUp = None,
    info_url: InfoUrl = None, watch_list: WatchList = None, leaderboard: Leaderboard = None,
    market_info_url: MarketUrl = None,
    scale: Scale = None, seed: Seed = None, hours: Hours = None, cadence: Cadence = None, interval: Interval = None,
    data_dir: DataDir = None, store: StoreUrl = None,
) -> None:  # fmt: skip
    """The one writer: ingest the source's backlog, then keep ingesting live (no API; `hyperscope serve`
    processes read the same store). Over PostgreSQL a second writer is refused."""
    from hyperscope.runtime import Signals, build, signing_secret

    settings = _settings(scale=scale, seed=seed, backfill_hours=hours, cadence_seconds=cadence,
                         live_interval_seconds=interval, data_dir=data_dir, store=store,
                         **_source_options(source, folder, node_data, catch_up, info_url, watch_list,
                                           leaderboard, market_info_url))  # fmt: skip
    parts = build(settings, ingest=True, serve=False)
    signals = Signals()
    with signals.installed():
        try:
            signing_secret(settings, parts.store)  # made once here, so every API process signs alike
            _catch_up(parts, signals)
            if not signals.stop.is_set() and not parts.status.failed:
                err.print(f"ingesting live into {parts.store.path} (Ctrl-C to stop)", soft_wrap=True)
                _live_worker(parts, signals.stop)
        except BaseException:
            parts.close()
            raise
        _finish(parts, signals)


@app.command()
def serve(
    host: Host = None, port: Port = None, data_dir: DataDir = None, public_url: PublicUrl = None,
    store: StoreUrl = None, files: FilesUrl = None, s3_endpoint_url: S3Endpoint = None, workers: Workers = None,
) -> None:  # fmt: skip
    """Serve the API over an existing store (no ingest), in --workers processes sharing one port. Any number
    of `serve` processes, on any machines, can read one PostgreSQL store; a DuckDB store is opened read-only
    by each worker when there are several (and then nothing may write it)."""
    from hyperscope.api.server import bind
    from hyperscope.runtime import Signals, build, make_app, serve_workers

    settings = _settings(host=host, port=port, data_dir=data_dir, public_url=public_url, store=store, files=files,
                         s3_endpoint_url=s3_endpoint_url, workers=workers)  # fmt: skip
    sock = bind(settings.host, settings.port)
    try:
        parts = build(settings, ingest=False, serve=True)
        if settings.workers > 1:
            assert parts.keys is not None
            key = _first_key(parts.keys)
            parts.close()  # the workers open their own (nothing open may cross a fork)
            signals = Signals()
            with signals.installed():
                code = serve_workers(settings, sock, signals, lambda: _announce(sock, key, parts.keys))  # type: ignore[arg-type]
            raise Exit(code)
        signals = Signals()
        with signals.installed():
            try:
                _serve_until_stopped(parts, sock, make_app(parts, ingesting=False), signals, _first_key(parts.keys))  # type: ignore[arg-type]
            except BaseException:
                parts.close()
                raise
            _finish(parts, signals)
    finally:
        sock.close()


def _print_status(store: Store) -> None:
    status = store.status()
    table = Table(title=f"hyperscope store ({status['backend']})")
    table.add_column("what")
    table.add_column("value", justify="right")
    for name, value in status["counts"].items():
        table.add_row(name.replace("_", " "), f"{value:,}")
    if status["first"]:
        table.add_row("first height", f"{status['first']['height']} ({iso_ms(status['first']['time'])})")
        last = status["last"]
        table.add_row("last height", f"{last['height']} ({iso_ms(last['time'])})")
        table.add_row("lag", f"{(now_ms() - last['time']) / 1000:,.1f} s")
        table.add_row("last ingest (before write)", f"{last['ingest_seconds']:.3f} s")
    out.print(table)


@app.command()
def simulate(
    write_node_dir: Annotated[str, typer.Option(help="Write the market as a node's data folder here (new or empty).")],
    scale: Scale = None, seed: Seed = None, hours: Hours = None, cadence: Cadence = None,
) -> None:  # fmt: skip
    """Write simulated history as a Hyperliquid node's files (snapshots, fills, ledger events, market data),
    for `hyperscope backfill --source replay DIR`."""
    from pathlib import Path

    from hyperscope.sources.simulator.nodewriter import write_node_dir as write
    from hyperscope.sources.simulator.source import SimulatedSource

    settings = _settings(scale=scale, seed=seed, backfill_hours=hours, cadence_seconds=cadence)
    root = Path(write_node_dir)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(f"--write-node-dir: {root} exists and is not an empty folder")
    root.mkdir(parents=True, exist_ok=True)
    source = SimulatedSource(settings.scale, settings.seed, settings.cadence_seconds, root / ".checkpoint.npz",
                             history_ms=int(settings.backfill_hours * HOUR_MS))  # fmt: skip
    with _progress("simulate") as bar:
        task = bar.add_task("simulate", total=None, info=f"writing {root}")

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        written = write(root, source, advance)
    out.print(f"wrote {written} snapshots of the simulated market to {root}", soft_wrap=True)


@app.command()
def status(data_dir: DataDir = None, store_url: StoreUrl = None) -> None:
    """Heights, counts and lag of the store (over PostgreSQL also while ingest and serve run)."""
    from hyperscope.runtime import open_store

    store = open_store(_settings(data_dir=data_dir, store=store_url), create=False)
    try:
        _print_status(store)
    finally:
        store.close()


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key.")] = "default",
    scope: Annotated[
        list[str] | None,
        typer.Option(help=f"{', '.join(SCOPES)}: repeat --scope for several; every scope when omitted."),
    ] = None,
    rate_limit: Annotated[int | None, typer.Option(help="Requests per minute (1-1000000).")] = None,
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Create an API key and print it (it is shown only once). Works while hyperscope runs."""
    from hyperscope.runtime import open_keys

    keys = open_keys(_settings(data_dir=data_dir, store=store))
    try:
        token, key = keys.create(name, scope, rate_limit)
        out.print(f"created key {key.key_id} ({key.name}, scopes {','.join(sorted(key.scopes))}, "
                  f"{key.rate_limit}/min)", soft_wrap=True)  # fmt: skip
        print(token)
    finally:
        keys.store.close()


@keys_app.command("list")
def keys_list(data_dir: DataDir = None, store: StoreUrl = None) -> None:
    """List API keys (ids and labels; the keys themselves are never stored)."""
    from hyperscope.runtime import open_keys

    keys = open_keys(_settings(data_dir=data_dir, store=store))
    try:
        table = Table("id", "name", "scopes", "rate/min", "created", "revoked")
        for key in keys.list():
            table.add_row(key.key_id, key.name, ",".join(sorted(key.scopes)), str(key.rate_limit),
                          iso_ms(key.created_at), iso_ms(key.revoked_at) if key.revoked_at else "")  # fmt: skip
        out.print(table)
    finally:
        keys.store.close()


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None, store: StoreUrl = None) -> None:
    """Revoke an API key by id; a running server refuses it within a second."""
    from hyperscope.runtime import open_keys

    keys = open_keys(_settings(data_dir=data_dir, store=store))
    try:
        key = keys.revoke(key_id)
        out.print(f"revoked key {key.key_id} ({key.name})")
    finally:
        keys.store.close()


def _leave(code: int) -> NoReturn:
    """Exit without the interpreter's teardown: everything is closed by now, and the teardown's only output
    would be native libraries' leak reports."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    from hyperscope.interrupts import Interrupted, install_early_handlers, take_early_signal

    install_early_handlers()  # again: when called directly rather than through the entry point
    try:
        app()
    except Exit as e:
        _leave(e.code)
    except Interrupted as e:
        err.print("interrupted during start-up; nothing was left half-done")
        _leave(e.code)
    except Exception as e:
        # a stop asked for during start-up that a library turned into its own error (DuckDB: "Query
        # interrupted") is still that stop, not a failure
        early = take_early_signal()
        if early is None:
            if isinstance(e, HyperscopeError):
                err.print(f"[red]error:[/] {escape(e.log_text)}", soft_wrap=True)  # the operator's terminal
                _leave(2)
            raise
        err.print("interrupted during start-up; nothing was left half-done")
        _leave(130 if early == signal.SIGINT else 0)
    except KeyboardInterrupt:
        err.print("interrupted")
        _leave(130)
    _leave(0)


if __name__ == "__main__":
    main()
