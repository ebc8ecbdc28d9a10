"""`hyperscope ...`: thin commands over the library. User mistakes end with one line and a non-zero exit."""

from __future__ import annotations

import gc
import logging
import secrets
import sys
import threading
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from hyperscope.domain.timefmt import iso_ms, now_ms
from hyperscope.errors import BadParameter, ConfigError, HyperscopeError
from hyperscope.settings import Settings

if TYPE_CHECKING:  # the heavy modules load only in the commands that use them
    from fastapi import FastAPI

    from hyperscope.ingest import Ingestor, IngestResult
    from hyperscope.service import KeyManager
    from hyperscope.sources.simulator import Simulator
    from hyperscope.store.base import Store

app = typer.Typer(
    help="hyperscope: Hyperliquid positioning analytics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
out = Console()
err = Console(stderr=True)

Scale = Annotated[str | None, typer.Option(help="Simulator scale: tiny, small or bench.")]
Hours = Annotated[float | None, typer.Option(help="Hours of history to generate on an empty store.")]
Cadence = Annotated[int | None, typer.Option(help="Market seconds between state updates.")]
DataDir = Annotated[str | None, typer.Option(help="Where the store lives.")]


def _settings(**overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(**values)  # type: ignore[arg-type]
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(f"setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from e
    if settings.scale not in ("tiny", "small", "bench"):
        raise BadParameter("scale", f"expected tiny, small or bench, got {settings.scale!r}")
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return settings


def _open(settings: Settings) -> Store:
    from hyperscope.store import open_store

    return open_store(settings.db_path)


def _simulator(settings: Settings, store: Store) -> Simulator:
    from hyperscope.pipeline import load_or_create
    from hyperscope.sources.simulator import preset

    config = preset(settings.scale, seed=settings.seed, cadence_s=settings.cadence_seconds)
    latest = store.latest()
    genesis = now_ms() - int(settings.backfill_hours * 3_600_000)
    sim = load_or_create(config, settings.checkpoint_path, genesis)
    if latest is not None and sim.time_ms < latest.time and not settings.checkpoint_path.exists():
        raise HyperscopeError(
            f"store {settings.db_path} already holds state updates but has no simulator checkpoint; "
            "use a new --data-dir or remove the store"
        )
    return sim


def _catch_up(settings: Settings, store: Store, ingestor: Ingestor) -> Simulator:
    """Backfill the simulated market up to now, with a progress bar."""
    from hyperscope.pipeline import backfill

    sim = _simulator(settings, store)
    cadence = sim.config.cadence_s * 1000
    window = int(settings.backfill_hours * 3_600_000)
    if now_ms() - sim.time_ms > window:  # long offline: skip ahead instead of replaying every step
        sim.time_ms = now_ms() - window
    steps = max(0, (now_ms() - sim.time_ms) // cadence)
    columns = (TextColumn("[bold]backfill"), BarColumn(), TextColumn("{task.completed}/{task.total} updates"),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task("backfill", total=steps, info="")

        def advance(done: int, total: int, result: IngestResult) -> None:
            bar.update(task, completed=done, info=f"height {result.height}, {result.positions} positions")

        backfill(sim, ingestor, now_ms(), checkpoint=settings.checkpoint_path, progress=advance)
    return sim


def _first_key(keys: KeyManager) -> str | None:
    if keys.active_count() == 0:
        token, _ = keys.create("first-run")
        return token
    return None


def _cursor_secret(settings: Settings, store: Store) -> bytes:
    if settings.cursor_secret:
        return settings.cursor_secret.encode()
    secret = store.get_meta("cursor_secret")
    if secret is None:
        secret = secrets.token_hex(32)
        store.set_meta("cursor_secret", secret)
    return secret.encode()


def _api(settings: Settings, store: Store, ingestor: Ingestor | None = None) -> tuple[FastAPI, KeyManager]:
    from hyperscope.api import create_app
    from hyperscope.api.observability import Metrics
    from hyperscope.service import CursorCodec, KeyManager, Service

    keys = KeyManager(store, settings.rate_limit_per_minute)
    service = Service(store, CursorCodec(_cursor_secret(settings, store), settings.cursor_ttl_seconds))
    metrics = Metrics()
    if ingestor is not None:
        ingestor.listeners.append(metrics.observe_ingest)
    return create_app(service, keys, settings.data_dir / "exports", metrics), keys


def _serve(settings: Settings, application: FastAPI) -> None:
    import uvicorn

    # Everything built so far lives as long as the server: move it out of the collector's way, so that
    # full collections stay short and do not stall requests.
    gc.collect()
    gc.freeze()
    config = uvicorn.Config(application, host=settings.host, port=settings.port, log_level="warning",
                            access_log=False, loop="uvloop", http="httptools")  # fmt: skip
    uvicorn.Server(config).run()


def _announce(settings: Settings, key: str | None, keys: KeyManager) -> None:
    url = f"http://{settings.host}:{settings.port}"
    say = out.print  # soft_wrap: a URL or key is never split across lines, whatever the terminal width
    say(f"\n[bold green]hyperscope is running[/] at [bold]{url}[/]  (docs: {url}/docs)", soft_wrap=True)
    if key:
        say("API key (shown once, keep it):", soft_wrap=True)
        say(f"[bold]{key}[/]", soft_wrap=True)
        say(f'Try: curl -H "Authorization: Bearer {key}" {url}/api/external/positions/coins', soft_wrap=True)
    else:
        say(f"{keys.active_count()} API key(s) exist; create one with `hyperscope keys create`.", soft_wrap=True)
    say("Press Ctrl-C to stop.\n", soft_wrap=True)


@app.command()
def run(
    scale: Scale = None, hours: Hours = None, cadence: Cadence = None,
    interval: Annotated[float | None, typer.Option(help="Wall seconds between live updates.")] = None,
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
    data_dir: DataDir = None,
) -> None:  # fmt: skip
    """Everything in one process: backfill the simulated market, keep ingesting live, serve the API."""
    from hyperscope.ingest import Ingestor
    from hyperscope.pipeline import live

    settings = _settings(scale=scale, backfill_hours=hours, cadence_seconds=cadence, live_interval_seconds=interval,
                         host=host, port=port, data_dir=data_dir)  # fmt: skip
    store = _open(settings)
    ingestor = Ingestor(store)
    application, keys = _api(settings, store, ingestor)
    key = _first_key(keys)
    sim = _catch_up(settings, store, ingestor)
    stop = threading.Event()
    worker = threading.Thread(
        target=live, args=(sim, ingestor, settings.live_interval_seconds, stop),
        kwargs={"checkpoint": settings.checkpoint_path}, name="live-ingest", daemon=True,
    )  # fmt: skip
    worker.start()
    _announce(settings, key, keys)
    try:
        _serve(settings, application)
    finally:
        stop.set()
        worker.join(timeout=30)
        store.close()


@app.command("backfill")
def backfill_cmd(scale: Scale = None, hours: Hours = None, cadence: Cadence = None,
                 data_dir: DataDir = None) -> None:  # fmt: skip
    """Generate simulated history up to now (as fast as it can) and ingest it."""
    from hyperscope.ingest import Ingestor

    settings = _settings(scale=scale, backfill_hours=hours, cadence_seconds=cadence, data_dir=data_dir)
    store = _open(settings)
    try:
        _catch_up(settings, store, Ingestor(store))
        _print_status(store)
    finally:
        store.close()


@app.command("live")
def live_cmd(
    scale: Scale = None, cadence: Cadence = None,
    interval: Annotated[float | None, typer.Option(help="Wall seconds between updates.")] = None,
    updates: Annotated[int | None, typer.Option(help="Stop after this many updates.")] = None,
    data_dir: DataDir = None,
) -> None:  # fmt: skip
    """Run the live ingest loop (no API): a new simulated state update every --interval seconds."""
    from hyperscope.ingest import Ingestor
    from hyperscope.pipeline import live

    settings = _settings(scale=scale, cadence_seconds=cadence, live_interval_seconds=interval, data_dir=data_dir)
    store = _open(settings)
    try:
        sim = _simulator(settings, store)
        stop = threading.Event()
        try:
            n = live(sim, Ingestor(store), settings.live_interval_seconds, stop,
                     checkpoint=settings.checkpoint_path, max_updates=updates)  # fmt: skip
        except KeyboardInterrupt:
            n = 0
        out.print(f"ingested {n} live state update(s)")
        _print_status(store)
    finally:
        store.close()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Serve the API over an existing store (no ingest)."""
    settings = _settings(host=host, port=port, data_dir=data_dir)
    if not settings.db_path.exists():
        raise HyperscopeError(f"no store at {settings.db_path}; run `hyperscope backfill` or `hyperscope run` first")
    store = _open(settings)
    application, keys = _api(settings, store)
    _announce(settings, _first_key(keys), keys)
    try:
        _serve(settings, application)
    finally:
        store.close()


def _print_status(store: Store) -> None:
    status = store.status()
    table = Table(title=f"hyperscope store ({status['backend']}: {status['path']})")
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
def status(data_dir: DataDir = None) -> None:
    """Heights, counts and lag of the store."""
    settings = _settings(data_dir=data_dir)
    if not settings.db_path.exists():
        raise HyperscopeError(f"no store at {settings.db_path}")
    store = _open(settings)
    try:
        _print_status(store)
    finally:
        store.close()


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key.")] = "default",
    scope: Annotated[list[str] | None, typer.Option(help="positions, metrics or segments; all when omitted.")] = None,
    rate_limit: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create an API key and print it (it is shown only once)."""
    from hyperscope.service import KeyManager

    settings = _settings(data_dir=data_dir)
    store = _open(settings)
    try:
        token, key = KeyManager(store, settings.rate_limit_per_minute).create(name, scope, rate_limit)
        out.print(f"created key {key.key_id} ({key.name}, scopes {','.join(sorted(key.scopes))}, "
                  f"{key.rate_limit}/min)")  # fmt: skip
        print(token)
    finally:
        store.close()


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List API keys (ids and labels; the keys themselves are never stored)."""
    from hyperscope.service import KeyManager

    settings = _settings(data_dir=data_dir)
    store = _open(settings)
    try:
        table = Table("id", "name", "scopes", "rate/min", "created", "revoked")
        for key in KeyManager(store).list():
            table.add_row(key.key_id, key.name, ",".join(sorted(key.scopes)), str(key.rate_limit),
                          iso_ms(key.created_at), iso_ms(key.revoked_at) if key.revoked_at else "")  # fmt: skip
        out.print(table)
    finally:
        store.close()


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke an API key by id."""
    from hyperscope.service import KeyManager

    settings = _settings(data_dir=data_dir)
    store = _open(settings)
    try:
        key = KeyManager(store).revoke(key_id)
        out.print(f"revoked key {key.key_id} ({key.name})")
    finally:
        store.close()


def main() -> None:
    try:
        app()
    except HyperscopeError as e:
        err.print(f"[red]error:[/] {e.message}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
