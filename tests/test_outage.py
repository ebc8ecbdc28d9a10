"""A PostgreSQL restart under a running deployment: `hyperscope ingest`, two `hyperscope serve` processes and
key changes from the command line. While the database is down every part says so (503, never a 500 or an
answer from a dead connection); once it is back, within seconds, everything serves again, a key revoked
after the restart stops working everywhere, rate limits are shared again, and no state update is lost or
stored twice."""

import functools
import time

import httpx
import psycopg
import pytest

from tests.pgserver import PostgresServer
from tests.process import Running, hyperscope, in_one_minute, wait_until
from tests.test_scale_out import start_ingest, stop, wait_for_updates

pytestmark = pytest.mark.slow
COINS = "/api/external/positions/coins"
ERRORS = (httpx.HTTPError, psycopg.Error, KeyError)  # a server or database still coming back
until = functools.partial(wait_until, ignoring=ERRORS)


def stored(url):
    with psycopg.connect(url) as con:
        heights = [h for (h,) in con.execute("SELECT height FROM state_updates ORDER BY height")]
        marks = [t for (t,) in con.execute("SELECT DISTINCT time FROM wallet_marks ORDER BY time")]
    return heights, marks


def create_key(url, *extra):
    made = hyperscope("keys", "create", "--store", url, *extra)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


@pytest.fixture
def own_server():
    # its own (this test stops it), and commits that survive a crash-stop (fsync may stay off: the OS keeps them)
    server = PostgresServer(settings={"synchronous_commit": "on"}).start()
    yield server
    server.stop()


def test_everything_comes_back_after_postgresql_restarts(own_server, tmp_path):
    url = own_server.create_database("outage")
    ingest = start_ingest(url, tmp_path)
    servers = []
    try:
        wait_for_updates(url, 4)
        servers = [Running("serve", "--store", url, "--data-dir", str(tmp_path / f"s{i}")) for i in range(2)]
        key = servers[0].key
        victim = create_key(url, "--name", "victim")
        for s in servers:
            until(lambda s=s: s.get(COINS, victim).status_code == 200, "the new key works")

        seen = servers[1].get("/health").json()  # a server reads what the writer (another process) records
        assert seen["ingest"]["process"] == "another" and seen["ingest"]["state"] in ("idle", "running"), seen

        own_server.halt()
        for s in servers:  # down: said, never served from a dead connection
            wait_until(
                lambda s=s: s.get("/health").json()["status"] == "store_unavailable", "health says so", ignoring=ERRORS
            )
            assert s.get("/health").status_code == 503
            assert s.get(COINS, key).status_code == 503
        down_health = servers[0].get("/health").text
        assert "127.0.0.1" not in down_health and "hyperscope@" not in down_health and "outage" not in down_health
        time.sleep(3)  # an outage of a few seconds (the ingest's retries span a minute)

        own_server.resume()
        revoked = hyperscope("keys", "revoke", victim.split("_")[1], "--store", url)
        assert revoked.returncode == 0, revoked.stderr
        before_restart = len(stored(url)[0])
        for s in servers:
            until(lambda s=s: s.get(COINS, key).status_code == 200, "serving again", timeout=30)
            wait_until(
                lambda s=s: s.get(COINS, victim).status_code == 401,
                "the revoked key refused",
                timeout=5,
                ignoring=ERRORS,
            )
            wait_until(
                lambda s=s: s.get("/health").json()["status"] == "ok", "healthy again", timeout=30, ignoring=ERRORS
            )
        wait_for_updates(url, before_restart + 3)  # ingest goes on by itself

        def attempt():  # a new key each time, known to both servers before counting (each answer uses one)
            limited = create_key(url, "--name", "limited", "--rate-limit", "10")
            for s in servers:
                wait_until(lambda s=s: s.get(COINS, limited).status_code != 401, "the new key", ignoring=ERRORS)
            return [servers[i % 2].get(COINS, limited).status_code for i in range(16)]

        codes = in_one_minute(attempt, seconds_needed=40)  # a limit counts per clock minute
        assert codes.count(200) == 8 and codes.count(429) == 8, (
            codes,
            [s.finish(timeout=5)[1][-3000:] for s in servers],
        )

        heights, marks = stored(url)
        steps = {b - a for a, b in zip(heights, heights[1:], strict=False)}
        assert len(steps) == 1, steps  # every update once: none lost, none doubled
        hours = [m // 3_600_000 for m in marks]
        assert len(hours) == len(set(hours)), marks  # no extra set of wallet marks from the reconnect
        assert ingest.poll() is None  # still ingesting
    finally:
        for s in servers:
            s.signal()
            s.finish()
        _, stderr = stop(ingest)
    assert ingest.returncode == 0, stderr
    assert "Traceback" not in stderr
