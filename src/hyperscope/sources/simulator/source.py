"""The simulator bound to one store: one market per store, checkpoints as it goes, resume after anything.

A store records which market feeds it (`identity`: scale, seed, cadence) and when that market began; a run
asking for another market is refused in one line instead of mixing two. The simulator is deterministic,
so it resumes anywhere: from its checkpoint (saved every few updates, never ahead of the store) it replays
the state updates the store already holds, with their stored times, and so reaches exactly the state that
produced the store's newest one. An interrupted first backfill, a crash between a commit and a checkpoint,
or a stale checkpoint all end the same way: a replay, with a progress callback, and no stall.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from hyperscope.domain.state import StateUpdate
from hyperscope.errors import ConfigError
from hyperscope.sources.simulator.engine import Simulator, preset

log = logging.getLogger("hyperscope.sources.simulator")

CHECKPOINT_EVERY = 20  # updates between checkpoints: what a crash costs is a replay of at most this many
CHECKPOINT_SECONDS = 60.0


class Newest(Protocol):
    @property
    def height(self) -> int: ...
    @property
    def time(self) -> int: ...


class Ledger(Protocol):
    """What resuming needs to know of the store it feeds (the store implements it; sources never import it)."""

    def latest(self) -> Newest | None: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def state_update_times(self, first_height: int, last_height: int) -> dict[int, int]: ...


class SimulatedSource:
    """The embedded default source. Call `attach(store)` once, then `step(time_ms)` per state update."""

    kind = "simulator"

    def __init__(self, scale: str, seed: int, cadence_s: int, checkpoint: Path) -> None:
        self.config = preset(scale, seed=seed, cadence_s=cadence_s)
        self.identity = f"simulator scale={scale} seed={seed} cadence={cadence_s}s"
        self.cadence_ms = cadence_s * 1000
        self.checkpoint_path = checkpoint
        self._sim: Simulator | None = None
        self._stored_height: int | None = None
        self._saved_height: int | None = None
        self._unsaved = 0
        self._saved_at = time.monotonic()

    @property
    def sim(self) -> Simulator:
        if self._sim is None:
            raise RuntimeError("attach() the source to a store first")
        return self._sim

    @property
    def time_ms(self) -> int:
        return self.sim.time_ms

    def _height(self, sim: Simulator) -> int:
        return self.config.start_height + sim.step_index * self.config.blocks_per_update

    # ------------------------------------------------------------ binding to a store

    def attach(self, store: Ledger, genesis_ms: int, progress: Callable[[int, int], None] | None = None) -> int:
        """Resume at the store's newest state update; returns how many updates were replayed to get there."""
        latest = store.latest()
        if latest is None:  # a new store: a new market (a checkpoint left without its store is not ours)
            store.set_meta("source", self.identity)
            store.set_meta("simulator_genesis_ms", str(genesis_ms))
            self.checkpoint_path.unlink(missing_ok=True)
            self._sim = Simulator(self.config, genesis_ms=genesis_ms)
            self._stored_height = self._height(self._sim)
            return 0
        self._check_identity(store)
        sim = self._load_checkpoint(latest.height)
        if sim is None:
            genesis = store.get_meta("simulator_genesis_ms")
            if genesis is None:
                raise ConfigError(
                    f"the store in {self.checkpoint_path.parent} holds state updates but neither a simulator "
                    "checkpoint nor the market's start time; use a new --data-dir"
                )
            sim = Simulator(self.config, genesis_ms=int(genesis))
        replayed = self._replay(sim, store, latest.height, progress)
        self._sim, self._stored_height = sim, latest.height
        if replayed:
            log.warning("simulator checkpoint was %d update(s) behind the store; replayed them", replayed)
            self.save()
        return replayed

    def _check_identity(self, store: Ledger) -> None:
        stored = store.get_meta("source")
        if stored is None:  # a store from a build that did not record it: the checkpoint's config tells
            checkpoint = Simulator.load(self.checkpoint_path) if self.checkpoint_path.exists() else None
            if checkpoint is None or checkpoint.config != self.config:
                raise ConfigError(
                    f"the store in {self.checkpoint_path.parent} was made by an older build for another or "
                    "unknown simulated market; use a new --data-dir"
                )
            store.set_meta("source", self.identity)
            return
        if stored != self.identity:
            raise ConfigError(
                f"the store in {self.checkpoint_path.parent} holds the {stored}; this run asks for the "
                f"{self.identity}: use the same --scale, --seed and --cadence, or a new --data-dir"
            )

    def _load_checkpoint(self, store_height: int) -> Simulator | None:
        if not self.checkpoint_path.exists():
            return None
        try:
            sim = Simulator.load(self.checkpoint_path)
        except (OSError, ValueError, KeyError) as e:
            log.warning("simulator checkpoint %s is unreadable (%s); rebuilding the market", self.checkpoint_path, e)
            return None
        if sim.config != self.config:
            raise ConfigError(
                f"the simulator checkpoint in {self.checkpoint_path.parent} is for another market than the store "
                "says (made by another build?); use a new --data-dir"
            )
        if self._height(sim) > store_height:
            log.warning(
                "simulator checkpoint (height %d) is ahead of the store (height %d): the store was restored "
                "from an older copy? rebuilding the market from its start",
                self._height(sim), store_height,
            )  # fmt: skip
            return None
        return sim

    def _replay(self, sim: Simulator, store: Ledger, until: int, progress: Callable[[int, int], None] | None) -> int:
        start = self._height(sim)
        if start >= until:
            return 0
        times = store.state_update_times(start + 1, until)
        step = self.config.blocks_per_update
        wanted = list(range(start + step, until + 1, step))
        missing = [h for h in wanted if h not in times]
        if missing:
            raise ConfigError(
                f"cannot resume the simulated market: the store no longer holds state update {missing[0]} "
                f"(retention deleted it?) and the checkpoint is older; use a new --data-dir"
            )
        for i, height in enumerate(wanted):
            sim.step(times[height])
            if progress is not None:
                progress(i + 1, len(wanted))
        return len(wanted)

    # ------------------------------------------------------------ producing state updates

    def backfill_times(self, until_ms: int, window_ms: int) -> list[int]:
        """The times of the state updates from now on up to `until_ms`, at the cadence.

        After a long time offline the market skips ahead to `window_ms` before `until_ms` instead of
        replaying every missed step.
        """
        if until_ms - self.sim.time_ms > window_ms:
            self.sim.time_ms = until_ms - window_ms
        return list(range(self.sim.time_ms + self.cadence_ms, until_ms + 1, self.cadence_ms))

    def step(self, time_ms: int) -> StateUpdate:
        return self.sim.step(max(time_ms, self.sim.time_ms + 1))

    def stored(self, height: int) -> None:
        """The state update of `height` is in the store (or was already): checkpoint when one is due."""
        self._stored_height = height
        self._unsaved += 1
        if self._unsaved >= CHECKPOINT_EVERY or time.monotonic() - self._saved_at >= CHECKPOINT_SECONDS:
            self.save()

    def save(self) -> None:
        """Checkpoint, but only a state the store has (never ahead of it), and only once per state."""
        if self._sim is None or self._stored_height != self._height(self._sim):
            return
        if self._saved_height == self._stored_height and self.checkpoint_path.exists():
            return
        self._sim.save(self.checkpoint_path)
        self._saved_height = self._stored_height
        self._unsaved = 0
        self._saved_at = time.monotonic()
