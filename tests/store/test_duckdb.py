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


def _old_view():
    from importlib import resources

    ddl = resources.files("hyperscope.store").joinpath("schema.sql").read_text()
    (view,) = [s for s in ddl.split(";") if "VIEW positions_open" in s]
    return view.replace(", l.wallet", "")


_OLD_VIEW = _old_view()
# what the builds of each older schema version lacked, newest first
_LATER = {
    8: [],  # schema 9 changed only PostgreSQL
    7: [],  # schema 8 changed only PostgreSQL
    6: ["DROP TABLE metrics_liquidation", "ALTER TABLE wallet_marks DROP COLUMN size_segment"],
    5: ["ALTER TABLE state_updates DROP COLUMN market_data"],
    4: ["DROP TABLE funding_hourly"],
    3: [
        "DROP VIEW positions_open",
        "ALTER TABLE lifecycles DROP COLUMN wallet",
        _OLD_VIEW,
        "ALTER TABLE positions_closed DROP COLUMN wallet",
        "ALTER TABLE state_updates DROP COLUMN has_orders",
        "DROP TABLE order_spans",
        "DROP TABLE order_ends",
        "DROP TABLE wallet_marks",
        *[
            f"ALTER TABLE positions_closed DROP COLUMN {c}"
            for c in ("mid_px", "premium", "sz_decimals", "max_leverage")
        ],
    ],
    2: ["ALTER TABLE state_updates DROP COLUMN thinned"],
}


@pytest.mark.parametrize("version", [2, 3, 4, 5, 6, 7, 8])
def test_an_older_store_is_migrated_in_place(tmp_path, sim, version):
    from hyperscope.ingest import Ingestor
    from hyperscope.store import open_store
    from hyperscope.store.duckdb import SCHEMA_VERSION
    from tests.factories import T0

    path = tmp_path / "old.duckdb"
    store = open_store(path)
    Ingestor(store).ingest(sim.step(T0 + 900_000))
    for older in range(SCHEMA_VERSION - 1, version - 1, -1):
        for statement in _LATER[older]:
            store._con.execute(statement)
    store._con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(version)])
    store.close()
    store = open_store(path)
    try:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert store._dicts("SELECT thinned, has_orders, market_data FROM state_updates", []) == [
            {"thinned": False, "has_orders": version >= 4, "market_data": ""}
        ]
        Ingestor(store).ingest(sim.step(T0 + 4 * 900_000))  # and it takes new state updates (the next hour)
        assert store.status()["counts"]["state_updates"] == 2
        assert store._scalar("SELECT count(*) FROM wallet_marks") > 0
        assert store._scalar("SELECT count(*) FROM positions_open WHERE wallet IS NULL") == 0
        assert store._scalar("SELECT count(*) FROM funding_hourly") > 0
        assert store._scalar("SELECT count(*) FROM metrics_liquidation") > 0
        assert store._scalar("SELECT count(size_segment) FROM wallet_marks WHERE time > ?", [T0 + 900_000]) > 0
    finally:
        store.close()
