"""What the commands print: progress bars, the running banner with the first key, the store's status."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from hyperscope.domain.timefmt import iso_ms, now_ms

if TYPE_CHECKING:
    import socket

    from hyperscope.service import KeyManager
    from hyperscope.store.base import Store

out = Console()
err = Console(stderr=True)
log = logging.getLogger("hyperscope.cli")


def progress(label: str) -> Progress:
    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} updates"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=err, transient=False)


def announce(sock: socket.socket, key: str | None, keys: KeyManager, secret: bytes) -> None:
    from hyperscope.dashboard import sign_in_link

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else ("127.0.0.1" if host in ("0.0.0.0", "") else host)  # noqa: S104
    url = f"http://{shown}:{port}"
    say = out.print  # soft_wrap: a URL or key is never split across lines, whatever the terminal width
    say(f"\n[bold green]hyperscope is running[/] at [bold]{url}[/]  (docs: {url}/docs)", soft_wrap=True)
    if key:
        link = sign_in_link(secret, key.split("_", 2)[1])
        say(f"Dashboard (one-time sign-in link, valid 10 min): [bold]{url}{link}[/]", soft_wrap=True)
        say("API key (shown once, keep it):", soft_wrap=True)
        say(f"[bold]{key}[/]", soft_wrap=True)
        say(f'Try: curl -H "Authorization: Bearer {key}" {url}/api/external/positions/coins', soft_wrap=True)
    else:
        say(
            f"{keys.active_count()} active API key(s); create one with `hyperscope keys create` "
            "(works while this runs).",
            soft_wrap=True,
        )
    say("Press Ctrl-C to stop.\n", soft_wrap=True)


def print_status(store: Store) -> None:
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
