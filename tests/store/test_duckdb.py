import subprocess
import sys

import pytest

from hyperscope.errors import ConfigError
from hyperscope.store import open_store

HOLD = """
import sys, time
from hyperscope.store import open_store
s = open_store(sys.argv[1])
print("ready", flush=True)
time.sleep(30)
"""


def test_a_store_held_by_another_process_gives_a_clear_reason(tmp_path):
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(ConfigError, match=r"in use by another process \(PID \d+\)"):
            open_store(path)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_a_store_from_a_newer_hyperscope_is_refused(tmp_path):
    store = open_store(tmp_path / "s.duckdb")
    store.set_meta("schema_version", "99")
    store.close()
    with pytest.raises(ConfigError, match="schema version 99"):
        open_store(tmp_path / "s.duckdb")


def test_a_store_of_schema_2_is_migrated_in_place(tmp_path, sim):
    from hyperscope.ingest import Ingestor
    from hyperscope.store import open_store
    from tests.factories import T0

    path = tmp_path / "old.duckdb"
    store = open_store(path)
    Ingestor(store).ingest(sim.step(T0 + 900_000))
    store._con.execute("ALTER TABLE state_updates DROP COLUMN thinned")  # what the previous build made
    store._con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    store.close()
    store = open_store(path)
    try:
        assert store.get_meta("schema_version") == "3"
        assert store._dicts("SELECT thinned FROM state_updates", []) == [{"thinned": False}]
        Ingestor(store).ingest(sim.step(T0 + 2 * 900_000))  # and it takes new state updates
        assert store.status()["counts"]["state_updates"] == 2
    finally:
        store.close()
