"""The `hyperscope` command's entry point: signal handling from the first moment (interrupts.py), then the CLI."""

from __future__ import annotations

from hyperscope.interrupts import Interrupted, install_early_handlers


def main() -> None:
    install_early_handlers()
    try:
        from hyperscope.cli import main as cli_main
    except Interrupted as e:
        raise SystemExit(e.code) from None
    cli_main()


if __name__ == "__main__":
    main()
