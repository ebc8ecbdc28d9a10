"""The embedded default running: the simulator feeding the ingestor, as backfill or live."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from hyperscope.domain.timefmt import now_ms
from hyperscope.ingest import Ingestor, IngestResult
from hyperscope.sources.simulator import SimConfig, Simulator

log = logging.getLogger("hyperscope.pipeline")


def load_or_create(config: SimConfig, checkpoint: Path, genesis_ms: int) -> Simulator:
    """Resume the simulator from its checkpoint when it matches the config, else start a new market."""
    if checkpoint.exists():
        sim = Simulator.load(checkpoint)
        if sim.config == config:
            return sim
        log.warning("simulator checkpoint %s is for another config; starting a new market", checkpoint)
    return Simulator(config, genesis_ms=genesis_ms)


def backfill(
    sim: Simulator,
    ingestor: Ingestor,
    until_ms: int,
    *,
    checkpoint: Path | None = None,
    progress: Callable[[int, int, IngestResult], None] | None = None,
) -> list[IngestResult]:
    """Step the simulator at its cadence from its current time up to `until_ms`, ingesting each update."""
    cadence = sim.config.cadence_s * 1000
    times = list(range(sim.time_ms + cadence, until_ms + 1, cadence))
    results = []
    for i, t in enumerate(times):
        result = ingestor.ingest(sim.step(t))
        results.append(result)
        if progress is not None:
            progress(i + 1, len(times), result)
    if checkpoint is not None and times:
        sim.save(checkpoint)
    return results


def live(
    sim: Simulator,
    ingestor: Ingestor,
    interval_s: float,
    stop: threading.Event,
    *,
    checkpoint: Path | None = None,
    max_updates: int | None = None,
) -> int:
    """A new state update every `interval_s` seconds of wall time, stamped with the wall clock.

    Each update simulates one cadence of market time, so the market moves faster than the clock.
    """
    done = 0
    while not stop.is_set() and (max_updates is None or done < max_updates):
        t = max(now_ms(), sim.time_ms + 1)
        result = ingestor.ingest(sim.step(t))
        if checkpoint is not None:
            sim.save(checkpoint)
        log.info("state update %s: %s positions in %.3fs", result.height, result.positions, result.total_seconds)
        done += 1
        stop.wait(interval_s)
    return done
