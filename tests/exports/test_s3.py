"""Export files on an S3-compatible store: moto's S3 in server mode, a real HTTP server on loopback (the same
wire protocol AWS, MinIO and Ceph speak). Links are the store's own pre-signed GETs, expiring as ours do."""

import csv
import io
import socket
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from hyperscope.errors import ConfigError
from hyperscope.exports.s3 import S3Files
from tests.api.conftest import World

E = "/api/external"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    patch = pytest.MonkeyPatch()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        patch.setenv(name, value)
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="hs-exports")
    yield endpoint
    patch.undo()
    server.stop()


@pytest.fixture(scope="module")
def world_s3(tmp_path_factory, s3):
    config = {"files": "s3://hs-exports/prod/exports", "s3_endpoint_url": s3}
    w = World(tmp_path_factory.mktemp("s3") / "store.duckdb", steps=6, config=config)
    yield w
    w.keys.store.close()
    w.store.close()


def test_export_links_are_presigned_by_the_store_and_hold_the_file(world_s3, s3):
    with TestClient(world_s3.app) as client:
        client.headers.update(world_s3.headers())
        r = client.get(f"{E}/positions/open/coin/BTC", follow_redirects=False)
        assert r.status_code == 302
        link = r.headers["location"]
        assert link.startswith(s3 + "/hs-exports/prod/exports/")
        query = parse_qs(urlsplit(link).query)
        assert query["X-Amz-Expires"] == ["120"]  # as long as our own signed links live
        assert "attachment" in query["response-content-disposition"][0]
        got = httpx.get(link)
        assert got.status_code == 200
        rows = list(csv.DictReader(io.StringIO(got.text)))
        assert rows and all(float(row["value"]) > 0 for row in rows)
        assert got.headers["content-disposition"].endswith('filename="BTC-open-positions.csv"')
        # the same state update's file is built once and linked again
        again = client.get(f"{E}/positions/open/coin/BTC", follow_redirects=False).headers["location"]
        assert urlsplit(again).path == urlsplit(link).path
        # and every format of a document
        for fmt in ("json", "csv", "parquet"):
            r = client.get(f"{E}/exports/coins/ETH/position-breakdown-by-size?format={fmt}", follow_redirects=False)
            assert httpx.get(r.headers["location"]).status_code == 200


class Clock:
    def __init__(self):
        self.ahead = 0.0

    def __call__(self):
        return time.time() + self.ahead


def test_old_objects_are_deleted_and_a_full_store_refuses_new_files(s3):
    clock = Clock()
    files = S3Files("s3://hs-exports/purge", endpoint_url=s3, max_bytes=1000, keep_seconds=100, clock=clock)
    first = files.put(b"x" * 600, "csv")
    clock.ahead += 61  # the next purge pass is due (they run at most once a minute)
    with pytest.raises(Exception, match="full"):
        files.put(b"y" * 600, "csv")
    clock.ahead += 61
    assert files.purge() == 0  # the old object went
    assert not files.keep_alive(first)
    clock.ahead = 0  # back to now: a new file is young
    second = files.put(b"z" * 600, "csv")
    assert files.keep_alive(second)


def test_only_objects_hyperscope_wrote_are_ever_deleted(s3):
    import boto3

    raw = boto3.client("s3", endpoint_url=s3)
    raw.create_bucket(Bucket="shared")
    foreign = [
        "backup.tar",
        "important/report.csv",
        "exp/notes.txt",
        "exp/sub/0123456789abcdef0123456789abcdef.csv",
        "exp/0123456789abcdef0123456789abcdef.csv",
    ]  # the last: our naming, but not written by us
    for key in foreign:
        raw.put_object(Bucket="shared", Key=key, Body=b"theirs")
    clock = Clock()
    files = S3Files("s3://shared/exp", endpoint_url=s3, max_bytes=10_000, keep_seconds=4, clock=clock)
    ours = files.put(b"ours", "json")
    clock.ahead += 3600
    files.purge()
    left = {o["Key"] for o in raw.list_objects_v2(Bucket="shared")["Contents"]}
    assert left == set(foreign)  # ours went, nothing of theirs did
    assert f"exp/{ours}" not in left


def test_a_bare_bucket_is_refused(s3):
    from hyperscope.settings import Settings

    with pytest.raises(ConfigError, match="prefix"):
        S3Files("s3://hs-exports", endpoint_url=s3, max_bytes=1000)
    with pytest.raises(ValueError, match="prefix"):
        Settings(files="s3://hs-exports")


def test_a_bucket_that_cannot_be_reached_is_one_clear_error(s3):
    with pytest.raises(ConfigError, match="no-such-bucket"):
        S3Files("s3://no-such-bucket/x", endpoint_url=s3, max_bytes=1000)
