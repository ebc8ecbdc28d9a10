"""What every source of state updates is, to the pipeline: the simulator, a node's files, an info server.

A source is bound to one store (`attach`): it checks that the store was fed by the same source (its
`identity`) and resumes right after the store's newest state update. Then the pipeline asks it for its
`backlog` (everything already due, ingested as fast as possible with a progress bar) and, live, for the
`next_update` (which blocks until one is due). After each stored update the pipeline says so (`stored`),
so the source can checkpoint, never ahead of the store; `save` checkpoints on the way out.

Sources never import the store: `Ledger` names the four things they need of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from hyperscope.domain.state import StateUpdate
from hyperscope.errors import ConfigError

Progress = Callable[[int, int], None]


class Newest(Protocol):
    @property
    def height(self) -> int: ...
    @property
    def time(self) -> int: ...


class Ledger(Protocol):
    """What resuming needs to know of the store it feeds (the store implements it)."""

    def latest(self) -> Newest | None: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def state_update_times(self, first_height: int, last_height: int) -> dict[int, int]: ...


@dataclass
class Backlog:
    """The state updates already due: `total` of them, each made when its step is called (so that one that
    fails, a snapshot rejected whole, does not end the others)."""

    total: int
    steps: Iterable[Callable[[], StateUpdate]]

    def __iter__(self) -> Iterator[Callable[[], StateUpdate]]:
        return iter(self.steps)


class Source(Protocol):
    """A producer of state updates (see the module docstring for the life cycle)."""

    identity: str  # what feeds the store, e.g. "simulator scale=small seed=7 cadence=900s" or "node /hl/data"

    def attach(self, store: Ledger, progress: Progress | None = None) -> int:
        """Bind to `store` and resume after its newest state update; returns updates replayed to get there."""
        ...

    def backlog(self) -> Backlog:
        """The state updates due now, oldest first."""
        ...

    def next_update(self, stop: threading.Event) -> StateUpdate | None:
        """Block until the next state update is due and return it; None once `stop` is set."""
        ...

    def stored(self, height: int) -> None:
        """The state update of `height` is in the store: checkpoint when one is due."""
        ...

    def save(self) -> None:
        """Checkpoint now (never a state ahead of the store)."""
        ...

    def health(self) -> dict[str, object]:
        """What /health says about this source (kind, coverage, where market data came from)."""
        ...


def claim(store: Ledger, identity: str, where: str, hint: str) -> None:
    """Record that `identity` feeds `store`, or refuse when another source already does."""
    stored = store.get_meta("source")
    if stored is None:
        store.set_meta("source", identity)
    elif stored != identity:
        raise ConfigError(
            f"the store in {where} holds state updates from the {stored}; this run asks for the "
            f"{identity}: {hint}, or use a new --data-dir"
        )
