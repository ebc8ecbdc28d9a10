"""The `hyperscope` command's entry point: signal handling from the first moment (interrupts.py), then the CLI."""

from __future__ import annotations

import sys

from hyperscope.interrupts import STOPPED_IN_START_UP, Interrupted, deferred, install_early_handlers, take_early_signal


def main() -> None:
    install_early_handlers()
    try:
        with deferred():  # a native module that a signal inside its import would abort (interrupts.deferred)
            import duckdb  # noqa: F401
        from hyperscope.cli import main as cli_main
    except Interrupted as e:
        stop = e
    except Exception:
        # the signal landed where Python wraps what a handler raised in an error of its own (during an import,
        # "Error calling __set_name__ ..."): still that stop, not a failure
        early = take_early_signal()
        if early is None:
            raise
        stop = Interrupted(early)
    else:
        cli_main()
        return
    print(STOPPED_IN_START_UP, file=sys.stderr)
    raise SystemExit(stop.code)


if __name__ == "__main__":
    main()
