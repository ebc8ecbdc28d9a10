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
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import orjson

from hyperscope.domain.state import StateUpdate
from hyperscope.domain.time import DAY_MS
from hyperscope.domain.timefmt import now_ms
from hyperscope.errors import ConfigError
from hyperscope.sources.base import Backlog, Ledger, Progress
from hyperscope.sources.hyperliquid.build import Anchors, WalletBook, build_update
from hyperscope.sources.hyperliquid.contexts import from_recording
from hyperscope.sources.simulator import nodeview
from hyperscope.sources.simulator.engine import Simulator, preset

log = logging.getLogger("hyperscope.sources.simulator")

ORDER_SNAPSHOT_MS = 300_000
CHECKPOINT_EVERY = 20  # updates between checkpoints: what a crash costs is a replay of at most this many
CHECKPOINT_SECONDS = 60.0


class SimulatedSource:
    """The embedded default source (a `Source`): one market time step per state update.

    A new store's market begins `history_ms` before `clock()`, and the backlog fills that history; live,
    a new update is due every `interval_s` wall seconds, stamped with the clock.
    """

    kind = "simulator"

    def __init__(
        self,
        scale: str,
        seed: int,
        cadence_s: int,
        checkpoint: Path,
        *,
        history_ms: int = DAY_MS,
        interval_s: float = 5.0,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.config = preset(scale, seed=seed, cadence_s=cadence_s)
        self.identity = f"simulator scale={scale} seed={seed} cadence={cadence_s}s"
        self.cadence_ms = cadence_s * 1000
        self.checkpoint_path = checkpoint
        self.history_ms = history_ms
        self.interval_s = interval_s
        self.clock = clock
        self._next_due = time.monotonic()
        self._sim: Simulator | None = None
        self._book = WalletBook()
        self._stored_height: int | None = None
        self._saved_height: int | None = None
        self._unsaved = 0
        self._saved_at = time.monotonic()
        self._began_at: int | None = None  # the clock when a new market began: its history runs up to it

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

    def attach(self, store: Ledger, progress: Progress | None = None) -> int:
        """Resume at the store's newest state update; returns how many updates were replayed to get there."""
        latest = store.latest()
        if latest is None:  # a new store: a new market (a checkpoint left without its store is not ours)
            sim = self.begin()
            store.set_meta("source", self.identity)
            store.set_meta("simulator_genesis_ms", str(sim.time_ms))
            self.checkpoint_path.unlink(missing_ok=True)
            self.book_path.unlink(missing_ok=True)
            return 0
        self._check_identity(store)
        loaded = self._load_checkpoint(latest.height)
        if loaded is not None:
            sim = loaded
        else:
            genesis = store.get_meta("simulator_genesis_ms")
            if genesis is None:
                raise ConfigError(
                    f"the store in {self.checkpoint_path.parent} holds state updates but neither a simulator "
                    "checkpoint nor the market's start time; use a new --data-dir"
                )
            sim = self._genesis(int(genesis))
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

    @property
    def book_path(self) -> Path:
        return self.checkpoint_path.with_name(self.checkpoint_path.stem + ".wallets.npz")

    def begin(self) -> Simulator:
        """A new market beginning `history_ms` before the clock (the market's course does not depend on
        when it begins: only its timestamps do)."""
        self._began_at = self.clock()
        genesis_ms = self._began_at - self.history_ms
        self._sim = self._genesis(genesis_ms)
        self._stored_height = self._height(self._sim)
        return self._sim

    def _genesis(self, genesis_ms: int) -> Simulator:
        """A new market, and what a node's files would say of its past: open times and HYPE staked."""
        sim = Simulator(self.config, genesis_ms=genesis_ms)
        self._book = WalletBook()
        self._book.learn_opens(nodeview.genesis_fills(sim))
        self._book.stake(nodeview.genesis_staking(sim))
        return sim

    def _load_checkpoint(self, store_height: int) -> Simulator | None:
        if not self.checkpoint_path.exists() or not self.book_path.exists():
            return None
        try:
            sim = Simulator.load(self.checkpoint_path)
            self._book = WalletBook()
            book_height = self._book.load(self.book_path)
        except (OSError, ValueError, KeyError) as e:
            log.warning("simulator checkpoint %s is unreadable (%s); rebuilding the market", self.checkpoint_path, e)
            return None
        if book_height != self._height(sim):
            log.warning(
                "simulator checkpoint and wallet book disagree (heights %d, %d); rebuilding the market",
                self._height(sim),
                book_height,
            )
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
                self._height(sim),
                store_height,
            )
            return None
        return sim

    def _replay(self, sim: Simulator, store: Ledger, until: int, progress: Progress | None) -> int:
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
            self._advance(sim, times[height])
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

    def backlog(self) -> Backlog:
        """Market history up to the clock: after a long time offline, only the last `history_ms` of it."""
        # a new market's history runs up to the moment it began: a second reading of the clock, a few ms
        # later, would move its course off the genesis (and a replay of its files off the direct run)
        until = self._began_at if self._began_at is not None else self.clock()
        self._began_at = None
        times = self.backfill_times(until, max(self.history_ms, self.cadence_ms))
        return Backlog(len(times), [partial(self.step, t) for t in times])

    def next_update(self, stop: threading.Event) -> StateUpdate | None:
        """One cadence of market time every `interval_s` wall seconds, stamped with the clock."""
        if stop.wait(max(0.0, self._next_due - time.monotonic())):
            return None
        self._next_due = time.monotonic() + self.interval_s
        return self.step(self.clock())

    def health(self) -> dict[str, object]:
        return {"kind": self.kind, "coverage": "all wallets", "market_data": "simulated"}

    def step(self, time_ms: int) -> StateUpdate:
        return self._advance(self.sim, max(time_ms, self.sim.time_ms + 1))

    def _advance(self, sim: Simulator, time_ms: int) -> StateUpdate:
        """One market step, turned into a state update the way a node source makes one (`nodeview`)."""
        before = sim.time_ms
        fills = sim.advance(time_ms)
        if sim.step_index == 1:  # the first snapshot anyone sees: wallets' all-time values so far
            pnl, volume = nodeview.anchors(sim)
            self._book.anchors = Anchors(pnl, volume)
        height = self._height(sim)
        contexts = from_recording(orjson.loads(orjson.dumps(nodeview.market_record(sim))))
        # every open order, whenever the update crosses a 5-minute boundary (an order snapshot is due)
        orders = sim.orders_table() if before // ORDER_SNAPSHOT_MS != time_ms // ORDER_SNAPSHOT_MS else None
        return build_update(
            nodeview.snapshot(sim, height),
            contexts,
            self._book,
            fills=fills,
            flows=nodeview.deposits(sim),
            orders=orders,
            source="simulator",
        )

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
        self._book.save(self.book_path, self._stored_height)
        self._saved_height = self._stored_height
        self._unsaved = 0
        self._saved_at = time.monotonic()
