"""The `hyperscope` command's entry point: signal handling from the first moment (interrupts.py), then the CLI."""

from __future__ import annotations

import signal
import sys

from hyperscope.interrupts import Interrupted, deferred, install_early_handlers, take_early_signal


def main() -> None:
    install_early_handlers()
    try:
        with deferred():  # a native module that a signal inside its import would abort (interrupts.deferred)
            import duckdb  # noqa: F401
        from hyperscope.cli import main as cli_main
    except Interrupted as e:
        print("interrupted during start-up; nothing was left half-done", file=sys.stderr)
        raise SystemExit(e.code) from None
    except Exception:
        # the signal landed where Python wraps what a handler raised in an error of its own (during an import,
        # "Error calling __set_name__ ..."): still that stop, not a failure
        early = take_early_signal()
        if early is None:
            raise
        print("interrupted during start-up; nothing was left half-done", file=sys.stderr)
        raise SystemExit(130 if early == signal.SIGINT else 0) from None
    cli_main()


if __name__ == "__main__":
    main()
