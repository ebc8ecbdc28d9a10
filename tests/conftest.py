import pytest

from hyperscope.ingest import Ingestor
from hyperscope.sources.simulator import Simulator, preset
from hyperscope.store import open_store
from tests.factories import T0


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "store.duckdb")
    yield s
    s.close()


@pytest.fixture
def sim():
    return Simulator(preset("tiny", seed=11), genesis_ms=T0)


@pytest.fixture
def ingestor(store):
    return Ingestor(store)
