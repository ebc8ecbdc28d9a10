"""API keys in their own file: several processes, changes seen within a second, only hashes on disk."""

import time

import pytest

from hyperscope.errors import AuthError
from hyperscope.runtime import open_keys
from hyperscope.service import KeyManager
from hyperscope.service.keys import RELOAD_SECONDS
from hyperscope.settings import Settings
from hyperscope.store import open_store
from hyperscope.store.keys import open_key_store
from tests.process import hyperscope, in_one_minute


def test_a_key_revoked_by_another_process_stops_working_within_a_second(tmp_path):
    """The key store is asked at most once a second: the first request after that second is refused (the
    clock is moved rather than waited on, so a loaded machine cannot make this late)."""
    keys = KeyManager(open_key_store(tmp_path / "keys.sqlite3"))
    try:
        token, record = keys.create("leaked")
        assert keys.authenticate(token).key_id == record.key_id
        done = hyperscope("keys", "revoke", record.key_id, "--data-dir", str(tmp_path))
        assert done.returncode == 0, done.stderr
        keys._checked -= RELOAD_SECONDS  # a second has passed since the last look at the key store
        with pytest.raises(AuthError, match="revoked"):
            keys.authenticate(token)
    finally:
        keys.store.close()


def test_a_key_created_by_another_process_works_within_a_second(tmp_path):
    keys = KeyManager(open_key_store(tmp_path / "keys.sqlite3"))
    try:
        made = hyperscope("keys", "create", "--name", "new", "--data-dir", str(tmp_path))
        token = made.stdout.strip().splitlines()[-1]
        time.sleep(RELOAD_SECONDS + 0.05)
        assert keys.authenticate(token).name == "new"
    finally:
        keys.store.close()


def test_only_hashes_reach_the_disk(tmp_path):
    keys = KeyManager(open_key_store(tmp_path / "keys.sqlite3"))
    token, _ = keys.create("secret")
    keys.store.close()
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    secret = token.split("_", 2)[2]  # the secret itself may contain "_"
    assert token.encode() not in on_disk and secret.encode() not in on_disk


@pytest.mark.parametrize("token", ["hs_١٢٣٤٥٦٧٨_x", "hs_ABCDEF12_x", "hs_12345678", "x"])
def test_malformed_keys_are_refused_before_any_lookup(tmp_path, token):
    keys = KeyManager(open_key_store(tmp_path / "keys.sqlite3"))
    try:
        with pytest.raises(AuthError, match="malformed"):
            keys.authenticate(token)
    finally:
        keys.store.close()


def test_keys_of_an_older_build_move_out_of_the_store_once(tmp_path):
    store = open_store(tmp_path / "hyperscope.duckdb")
    old = KeyManager(open_key_store(":memory:"))
    token, record = old.create("from-before")
    row = old.store.rows()[0]
    store._con.execute(
        "CREATE TABLE api_keys (key_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, hash VARCHAR NOT NULL, "
        "scopes VARCHAR NOT NULL, rate_limit INTEGER NOT NULL, created_at BIGINT NOT NULL, revoked_at BIGINT)"
    )
    store._con.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?)", list(row.values()))
    store.close()
    keys = open_keys(Settings(data_dir=tmp_path))  # the key file does not exist yet: made from the store
    try:
        assert keys.authenticate(token).key_id == record.key_id
        assert keys.ever_created() == 1
    finally:
        keys.store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def key_store_target(request, tmp_path):
    """Where a key store lives: the SQLite file beside a DuckDB store, or a hyperscope PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "keys.sqlite3")
    url = request.getfixturevalue("pg_server").create_database(f"k_{abs(hash(request.node.name)) % 10**12}")
    open_store(url).close()  # the schema
    return url


@pytest.mark.parametrize("limit", [5, 60, 1000])
def test_a_rate_limit_is_exact_across_processes(key_store_target, limit):
    """Three processes (each its own connection to the shared counts) serve one key in turn: up to `limit`
    requests are admitted in the minute, never one more, less at most a token a process took and holds unused."""
    from hyperscope.errors import RateLimited
    from hyperscope.service.keys import MinuteWindows

    stores = [open_key_store(key_store_target) for _ in range(3)]

    def minute_of_requests():
        windows = [MinuteWindows(s, "requests") for s in stores]  # each minute's counts start afresh
        codes = []
        for i in range(limit + 30):
            try:
                windows[i % 3].hit(f"k{limit}", limit, "limit {limit}, retry {retry}")
                codes.append(200)
            except RateLimited:
                codes.append(429)
        return codes, sum(w._held.get(f"k{limit}", 0) for w in windows)

    codes, held = in_one_minute(minute_of_requests)
    admitted = codes.count(200)
    assert admitted + held == limit and held <= 3  # nothing past the limit; at most a token a process unused
    assert codes.count(429) == limit + 30 - admitted
    for s in stores:
        s.close()
