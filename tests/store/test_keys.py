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
from tests.process import hyperscope


def test_a_key_revoked_by_another_process_stops_working_within_a_second(tmp_path):
    keys = KeyManager(open_key_store(tmp_path / "keys.sqlite3"))
    try:
        token, record = keys.create("leaked")
        assert keys.authenticate(f"Bearer {token}").key_id == record.key_id
        done = hyperscope("keys", "revoke", record.key_id, "--data-dir", str(tmp_path))
        assert done.returncode == 0, done.stderr
        revoked_at = time.monotonic()
        while True:
            try:
                keys.authenticate(f"Bearer {token}")
            except AuthError as e:
                assert "revoked" in e.message
                break
            assert time.monotonic() - revoked_at < RELOAD_SECONDS + 0.5
            time.sleep(0.05)
    finally:
        keys.store.close()


def test_a_key_created_by_another_process_works_within_a_second(tmp_path):
    keys = KeyManager(open_key_store(tmp_path / "keys.sqlite3"))
    try:
        made = hyperscope("keys", "create", "--name", "new", "--data-dir", str(tmp_path))
        token = made.stdout.strip().splitlines()[-1]
        time.sleep(RELOAD_SECONDS + 0.05)
        assert keys.authenticate(f"Bearer {token}").name == "new"
    finally:
        keys.store.close()


def test_only_hashes_reach_the_disk(tmp_path):
    keys = KeyManager(open_key_store(tmp_path / "keys.sqlite3"))
    token, _ = keys.create("secret")
    keys.store.close()
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    secret = token.split("_", 2)[2]  # the secret itself may contain "_"
    assert token.encode() not in on_disk and secret.encode() not in on_disk


@pytest.mark.parametrize("header", ["Bearer hs_١٢٣٤٥٦٧٨_x", "Bearer hs_ABCDEF12_x", "Bearer hs_12345678", "Bearer x"])
def test_malformed_keys_are_refused_before_any_lookup(tmp_path, header):
    keys = KeyManager(open_key_store(tmp_path / "keys.sqlite3"))
    try:
        with pytest.raises(AuthError, match="malformed"):
            keys.authenticate(header)
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
        assert keys.authenticate(f"Bearer {token}").key_id == record.key_id
        assert keys.ever_created() == 1
    finally:
        keys.store.close()
