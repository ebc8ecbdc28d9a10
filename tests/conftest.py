import uuid

import pytest

from hyperscope.ingest import Ingestor
from hyperscope.sources.simulator import Simulator, preset
from hyperscope.store import open_store
from tests.factories import T0
from tests.pgserver import PostgresServer

BACKENDS = ["duckdb", "postgresql"]


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server for this test session (one per xdist worker), thrown away at the end."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def store_target(request, tmp_path):
    """Where a store lives, once per backend: the contract suite runs every test using it on both."""
    if request.param == "duckdb":
        return tmp_path / "store.duckdb"
    return request.getfixturevalue("pg_server").create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def store(store_target):
    s = open_store(store_target)
    yield s
    s.close()


@pytest.fixture
def sim():
    return Simulator(preset("tiny", seed=11), genesis_ms=T0)


@pytest.fixture
def ingestor(store):
    return Ingestor(store)
