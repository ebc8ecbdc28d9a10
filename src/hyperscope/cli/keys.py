"""`hyperscope keys create|list|revoke`: API keys, also while hyperscope runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from hyperscope.cli.console import out
from hyperscope.cli.entry import keys_app
from hyperscope.cli.options import PLACE, with_settings
from hyperscope.domain.timefmt import iso_ms
from hyperscope.service.keys import SCOPES
from hyperscope.settings import Settings

if TYPE_CHECKING:
    from hyperscope.service import KeyManager


@contextmanager
def _keys(settings: Settings) -> Iterator[KeyManager]:
    from hyperscope.runtime import open_keys

    keys = open_keys(settings)
    try:
        yield keys
    finally:
        keys.store.close()


@keys_app.command("create")
@with_settings(*PLACE)
def keys_create(
    settings: Settings,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "default",
    scope: Annotated[
        list[str] | None,
        typer.Option(help=f"{', '.join(SCOPES)}: repeat --scope for several; every scope when omitted."),
    ] = None,
    rate_limit: Annotated[int | None, typer.Option(help="Requests per minute (1-1000000).")] = None,
) -> None:
    """Create an API key and print it (it is shown only once). Works while hyperscope runs."""
    with _keys(settings) as keys:
        token, key = keys.create(name, scope, rate_limit)
        out.print(
            f"created key {key.key_id} ({key.name}, scopes {','.join(sorted(key.scopes))}, {key.rate_limit}/min)",
            soft_wrap=True,
        )
        print(token)


@keys_app.command("list")
@with_settings(*PLACE)
def keys_list(settings: Settings) -> None:
    """List API keys (ids and labels; the keys themselves are never stored)."""
    with _keys(settings) as keys:
        table = Table("id", "name", "scopes", "rate/min", "created", "revoked")
        for key in keys.list():
            table.add_row(
                key.key_id,
                key.name,
                ",".join(sorted(key.scopes)),
                str(key.rate_limit),
                iso_ms(key.created_at),
                iso_ms(key.revoked_at) if key.revoked_at else "",
            )
        out.print(table)


@keys_app.command("revoke")
@with_settings(*PLACE)
def keys_revoke(settings: Settings, key_id: Annotated[str, typer.Argument()]) -> None:
    """Revoke an API key by id; a running server refuses it within a second."""
    with _keys(settings) as keys:
        key = keys.revoke(key_id)
        out.print(f"revoked key {key.key_id} ({key.name})")
