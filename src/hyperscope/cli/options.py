"""Command-line options made from the Settings fields: a flag is named once (`settings.FLAGS`) and described
once (its field's description), and every command that takes it gets the same option."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from hyperscope.errors import ConfigError
from hyperscope.settings import FLAGS, Settings, describe_error

SOURCE = ("source", "node_data", "catch_up", "info_url", "watch_list", "leaderboard", "market_info_url")
SIMULATOR = ("scale", "seed", "backfill_hours", "cadence_seconds")
SERVER = ("host", "port", "public_url", "files", "s3_endpoint_url")
PLACE = ("data_dir", "store")

Folder = Annotated[
    str | None,
    typer.Argument(help="The folder to replay (--source replay) or watch (--source node).", show_default=False),
]


def _option(name: str) -> inspect.Parameter:
    field = Settings.model_fields[name]
    kind = field.annotation if field.annotation in (int, float) else str
    hint = Annotated[kind | None, typer.Option(FLAGS[name], help=field.description, show_default=False)]  # type: ignore[operator,valid-type]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)


def settings_of(**flags: object) -> Settings:
    """Settings from the flags given (None: not given, so the environment or the default decides)."""
    try:
        settings = Settings(**{k: v for k, v in flags.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as e:
        raise ConfigError(describe_error(e)) from None
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return settings


def with_settings(*names: str, folder: bool = False) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A command taking `settings` (built from the options `names`) and its own other parameters. With
    `folder`, a positional folder is accepted as the node data folder (--node-data)."""

    def wrap(command: Callable[..., None]) -> Callable[..., None]:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "settings"]

        @wraps(command)
        def run(**given: Any) -> None:
            flags = {name: given.pop(name) for name in names}
            if folder:
                path = given.pop("folder")
                if path is not None and flags.get("node_data") is not None and path != flags["node_data"]:
                    raise ConfigError("give the node's data folder once: as the argument or as --node-data")
                flags["node_data"] = path or flags.get("node_data")
            command(settings_of(**flags), **given)

        positional = (
            [inspect.Parameter("folder", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=Folder)]
            if folder
            else []
        )
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        run.__signature__ = inspect.Signature([*positional, *(_option(n) for n in names), *keyword])  # type: ignore[attr-defined]
        return run

    return wrap
