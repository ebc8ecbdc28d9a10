"""Supervised ingest: what may pass is retried, what cannot stops ingest for good, bad updates are skipped."""

import subprocess
import threading
from dataclasses import replace

import duckdb
import pyarrow as pa
import pytest

from hyperscope.errors import StoreFailed
from hyperscope.ingest import Ingestor
from hyperscope.pipeline import IngestFailed, IngestStatus, backoff, supervised_ingest
from hyperscope.store import open_store
from tests.factories import T0
from tests.test_ingest import check_recomputation

STEP = 900_000
NO_WAIT = lambda attempt: 0.0  # noqa: E731


def failing(times: int, error: Exception):
    """A store fault hook that raises `error` at the positions stage of the next `times` writes."""
    left = [times]

    def hook(stage: str) -> None:
        if stage == "positions" and left[0] > 0:
            left[0] -= 1
            raise error

    return hook


def native(store, kind: str) -> Exception:
    """An exception the backend's own driver raises: one that may pass (a full disk) or a fatal one."""
    if store.backend == "duckdb":
        if kind == "transient":
            return duckdb.IOException("simulated: No space left on device")
        if kind == "fatal":
            return duckdb.FatalException("simulated: database has been invalidated")
        return duckdb.InternalException("simulated: an internal error")
    from psycopg import errors

    if kind == "transient":
        return errors.DiskFull("simulated: could not extend file: No space left on device")
    return errors.DataCorrupted("simulated: invalid page in block 7")


def test_backoff_doubles_from_one_second_to_a_minute():
    assert [backoff(a) for a in (1, 2, 3, 4, 7, 8, 20)] == [1, 2, 4, 8, 60, 60, 60]


def test_a_transient_store_error_is_retried_and_the_update_lands_once(sim, ingestor, store):
    ingestor.ingest(sim.step(T0 + STEP))
    store.fault_hook = failing(2, native(store, "transient"))
    status, seen = IngestStatus(), []
    update = sim.step(T0 + 2 * STEP)
    delays = []
    result = supervised_ingest(
        ingestor, update, status, threading.Event(), 3, lambda a: seen.append(status.state) or delays.append(a) or 0.0
    )
    assert result is not None and result.height == update.height
    assert delays == [1, 2] and seen == ["retrying", "retrying"]
    assert status.state == "running" and status.retries == 0 and status.reason is None
    assert store.status()["counts"]["state_updates"] == 2
    check_recomputation(store, update.height)


def test_retries_run_out_and_ingest_stops_with_the_reason(sim, ingestor, store):
    ingestor.ingest(sim.step(T0 + STEP))
    store.fault_hook = failing(10, native(store, "transient"))
    status, stopped = IngestStatus(), []
    status.on_failure.append(stopped.append)
    with pytest.raises(IngestFailed):
        supervised_ingest(ingestor, sim.step(T0 + 2 * STEP), status, threading.Event(), 2, NO_WAIT)
    assert status.failed and "gave up after 2 retries" in status.reason and stopped == [status.reason]
    assert "/" not in status.reason  # the reason /health shows names no file
    assert store.status()["counts"]["state_updates"] == 1


def test_a_fatal_store_error_stops_ingest_at_once(sim, ingestor, store):
    ingestor.ingest(sim.step(T0 + STEP))
    fatal = native(store, "broken")
    store.fault_hook = failing(1, fatal)
    status = IngestStatus()
    with pytest.raises(IngestFailed) as raised:
        supervised_ingest(ingestor, sim.step(T0 + 2 * STEP), status, threading.Event(), 5, NO_WAIT)
    assert isinstance(raised.value.__cause__, StoreFailed)
    assert status.failed and status.reason == f"the store failed ({type(fatal).__name__})"


def test_an_embedded_store_invalidated_by_a_fatal_error_is_opened_again_and_the_update_lands(tmp_path, sim):
    """DuckDB refuses every statement after a fatal error (a failed write to disk, say) until the database is
    opened again: the store reopens its file (replaying the WAL) and the retried update lands, once."""
    from hyperscope.ingest import Ingestor
    from hyperscope.store import open_store

    store = open_store(tmp_path / "store.duckdb")
    ingestor = Ingestor(store)
    ingestor.ingest(sim.step(T0 + STEP))
    store.fault_hook = failing(1, native(store, "fatal"))
    status, delays = IngestStatus(), []
    update = sim.step(T0 + 2 * STEP)
    result = supervised_ingest(ingestor, update, status, threading.Event(), 3, lambda a: delays.append(a) or 0.0)
    assert result is not None and delays == [1] and status.state == "running"
    assert store.status()["counts"]["state_updates"] == 2
    check_recomputation(store, update.height)
    store.close()


def test_a_rejected_update_is_skipped_counted_and_the_next_one_lands(sim, ingestor, store):
    ingestor.ingest(sim.step(T0 + STEP))
    good = sim.step(T0 + 2 * STEP)
    sizes = good.positions.column("size").to_numpy().copy()
    sizes[0] *= 3
    bad = replace(good, positions=good.positions.set_column(3, "size", pa.array(sizes)))
    status = IngestStatus()
    assert supervised_ingest(ingestor, bad, status, threading.Event(), 3, NO_WAIT) is None
    assert status.rejected == 1 and "long size" in status.reason and not status.failed
    later = sim.step(T0 + 3 * STEP)
    assert supervised_ingest(ingestor, later, status, threading.Event(), 3, NO_WAIT).height == later.height
    check_recomputation(store, later.height)


def test_a_stop_during_a_retry_wait_ends_at_once(sim, ingestor, store):
    ingestor.ingest(sim.step(T0 + STEP))
    store.fault_hook = failing(5, native(store, "transient"))
    stop = threading.Event()
    stop.set()
    status = IngestStatus()
    assert supervised_ingest(ingestor, sim.step(T0 + 2 * STEP), status, stop, 5, lambda a: 30.0) is None
    assert not status.failed and status.state == "retrying"


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs: a real full disk. Needs root, as the CI and development machines run."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_mid_ingest_leaves_the_store_as_it_was_and_ingest_resumes_when_space_is_freed(small_disk, sim):
    ballast = small_disk / "ballast"
    store = open_store(small_disk / "store.duckdb", memory_mib=256)
    ingestor = Ingestor(store)
    ingestor.ingest(sim.step(T0 + STEP))
    store._con.execute("CHECKPOINT")
    free = subprocess.run(["df", "--output=avail", "-B1", str(small_disk)], capture_output=True, text=True)
    ballast.write_bytes(b"\0" * (int(free.stdout.split()[-1]) - 64 * 1024))  # leave 64 KiB
    status = IngestStatus()
    attempts = []

    def free_space_on_second_retry(attempt: int) -> float:
        attempts.append(attempt)
        if attempt == 2:
            ballast.unlink()
        return 0.0

    update = sim.step(T0 + 2 * STEP)
    result = supervised_ingest(ingestor, update, status, threading.Event(), 5, free_space_on_second_retry)
    assert attempts[:2] == [1, 2]  # the full disk was hit, and retried
    assert result is not None and result.height == update.height
    check_recomputation(store, update.height)
    store.close()
    reopened = open_store(small_disk / "store.duckdb")
    try:
        assert reopened.status()["counts"]["state_updates"] == 2
        check_recomputation(reopened, update.height)
    finally:
        reopened.close()
