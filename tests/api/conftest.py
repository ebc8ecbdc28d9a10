import socket
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from hyperscope.api import ApiConfig, create_app
from hyperscope.api.server import JSONErrorProtocol
from hyperscope.ingest import Ingestor
from hyperscope.service import CursorCodec, KeyManager, Service
from hyperscope.signing import Signer
from hyperscope.sources.simulator import Simulator, preset
from hyperscope.store import open_store
from hyperscope.store.keys import open_key_store
from tests.factories import T0

HOUR = 3_600_000
SECRET = b"test-secret-of-32-bytes-for-tests"


def api_config(data_dir, **overrides):
    """The API's config from default Settings over `data_dir` (never stale unless told), with overrides."""
    from dataclasses import replace

    from hyperscope.settings import Settings

    made = ApiConfig.from_settings(Settings(data_dir=data_dir), secret=SECRET, stale_after_seconds=1e12)
    return replace(made, **overrides)


class World:
    """A store with simulated history ingested, an app over it and keys of several kinds."""

    def __init__(self, path, genesis_ms=T0, steps=12, target=None, config=None):
        self.store = open_store(target or path)
        self.sim = Simulator(preset("tiny", seed=21), genesis_ms=genesis_ms)
        self.ingestor = Ingestor(self.store)
        self.updates = [self.step() for _ in range(steps)]
        self.keys = KeyManager(open_key_store(path.parent / "keys.sqlite3"), 100_000)
        self.key, _ = self.keys.create("tests")
        self.metrics_only, _ = self.keys.create("metrics-only", ["metrics"])
        self.limited, _ = self.keys.create("limited", rate_limit=3)
        self.revoked, record = self.keys.create("revoked")
        self.keys.revoke(record.key_id)
        self.service = Service(self.store, CursorCodec(Signer(SECRET, "cursor", 3600)))
        self.config = api_config(path.parent, **(config or {}))
        self.app = create_app(self.service, self.keys, self.config)

    def step(self):
        update = self.sim.step(self.sim.time_ms + 900_000)
        self.ingestor.ingest(update)
        return update

    def headers(self, key=None):
        return {"Authorization": f"Bearer {key or self.key}"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("api") / "store.duckdb")
    yield w
    w.keys.store.close()
    w.store.close()


@pytest.fixture(scope="module")
def client(world):
    with TestClient(world.app) as c:
        c.headers.update(world.headers())
        yield c


@contextmanager
def serving(app, headers, protocol=JSONErrorProtocol):
    """An app on a real socket (uvicorn in a thread), with an httpx client at its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", http=protocol)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def live_server(world):
    """The same app on a real socket (uvicorn in a thread)."""
    with serving(world.app, world.headers()) as http:
        yield http


FEB_10 = int(datetime(2026, 2, 10, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="session")
def february(tmp_path_factory):
    """40 hours of a simulated market from 2026-02-10 (the dates the upstream examples ask for), served live."""
    world = World(tmp_path_factory.mktemp("feb") / "store.duckdb", genesis_ms=FEB_10, steps=4 * 40)
    with serving(world.app, world.headers()) as http:
        yield world, http
    world.keys.store.close()
    world.store.close()
