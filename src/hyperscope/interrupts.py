"""Stop signals before a command can stop gracefully: the entry point's early handlers.

Importing the CLI (typer, rich, pydantic) and building a command's parts take a while; a Ctrl-C, SIGTERM or
SIGHUP in that time must end the process the way it does later (one line, exit 130 for Ctrl-C, 0 for an
orderly stop), never with Python's default (a traceback, or death by the signal with nothing closed).
Until a command installs its own handlers (runtime.Signals: finish the current state update, then stop),
a signal raises `Interrupted` wherever start-up is; what was opened is closed as the exception unwinds.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class Interrupted(BaseException):  # noqa: N818 - like KeyboardInterrupt, not an error
    """A stop signal that arrived before the command could stop gracefully."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def code(self) -> int:
        return 130 if self.signum == signal.SIGINT else 0


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOPPED_IN_START_UP = "interrupted during start-up; nothing was left half-done"  # the one line such a stop prints
# The stop signal `_early` raised for. Python runs a handler at any point of the program, also inside a
# finalizer or a callback from C, where an exception is printed as "ignored" and dropped: start-up then goes
# on as if nothing happened. The command's own handlers (runtime.Signals) take the signal over from here.
_pending: list[int] = []
# How many `deferred()` sections are open: inside one, `_early` only records the signal.
_deferring: list[int] = [0]


def _early(signum: int, frame: FrameType | None) -> None:
    for s in STOP_SIGNALS:  # one is enough: a second signal while unwinding must not interrupt the cleanup
        signal.signal(s, signal.SIG_IGN)
    _pending.append(signum)
    if _deferring[0]:
        return
    raise Interrupted(signum)


@contextmanager
def deferred() -> Iterator[None]:
    """A section that a stop signal must not interrupt, only end: the signal is raised when it is over.

    For native code that calls back into Python and cannot take an exception there: DuckDB's module (nanobind)
    builds its enums through Python during its import, and aborts the whole process (SIGABRT, no cleanup) when
    a handler raises inside that."""
    _deferring[0] += 1
    try:
        yield
    finally:
        _deferring[0] -= 1
    if not _deferring[0] and _pending:
        raise Interrupted(_pending[0])


def take_early_signal() -> int | None:
    """The stop signal that arrived during start-up, if any (and forget it)."""
    signum = _pending[0] if _pending else None
    _pending.clear()
    return signum


def _quiet_when_interrupted(unraisable: Any) -> None:
    """Python prints an exception it had to drop ("Exception ignored in ...", with a traceback); a dropped
    `Interrupted` is not an error: the signal is kept in `_pending` for the command's handlers."""
    if isinstance(unraisable.exc_value, Interrupted):
        return
    sys.__unraisablehook__(unraisable)


def install_early_handlers() -> None:
    sys.unraisablehook = _quiet_when_interrupted
    for s in STOP_SIGNALS:
        signal.signal(s, _early)
