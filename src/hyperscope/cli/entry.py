"""The `hyperscope` Typer app and `main()`: how every command ends.

User mistakes end with one line and exit 2; an ingest that stopped for good ends with one line and exit 1;
Ctrl-C ends with one line and exit 130; SIGTERM stops in order (the state update in progress finishes,
the store closes) and exits 0.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import NoReturn

import typer
from rich.markup import escape

from hyperscope.cli.console import err
from hyperscope.cli.lifecycle import Exit
from hyperscope.errors import HyperscopeError

app = typer.Typer(
    help="hyperscope: Hyperliquid positioning analytics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Create, list and revoke API keys (also while hyperscope runs).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _leave(code: int) -> NoReturn:
    """Exit without the interpreter's teardown: everything is closed by now, and the teardown's only output
    would be native libraries' leak reports."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    from hyperscope.interrupts import STOPPED_IN_START_UP, Interrupted, install_early_handlers, take_early_signal

    install_early_handlers()  # again: when called directly rather than through the entry point
    try:
        app()
    except Exit as e:
        _leave(e.code)
    except Interrupted as e:
        err.print(STOPPED_IN_START_UP)
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
        err.print(STOPPED_IN_START_UP)
        _leave(130 if early == signal.SIGINT else 0)
    except KeyboardInterrupt:
        err.print("interrupted")
        _leave(130)
    _leave(0)
