"""One PostgreSQL database, one `hyperscope ingest` and several `hyperscope serve` processes: real processes,
real HTTP. They answer alike, keys change while they run, and rate limits hold across them."""

import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.process import ENV, MAIN, Running, hyperscope, in_one_minute, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def database(pg_server):
    return pg_server.create_database(f"scale_{int(time.time() * 1e6)}")


def start_ingest(url, tmp_path, *extra):
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            MAIN,
            "ingest",
            "--store",
            url,
            "--scale",
            "tiny",
            "--hours",
            "1",
            "--interval",
            "0.5",
            "--data-dir",
            str(tmp_path / "ingest"),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def wait_for_updates(url, count, timeout=60):
    import psycopg

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with psycopg.connect(url) as con:
                if con.execute("SELECT count(*) FROM state_updates").fetchone()[0] >= count:
                    return
        except psycopg.Error:
            pass
        time.sleep(0.2)
    raise AssertionError(f"ingest stored fewer than {count} state updates in {timeout} s")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


PATHS = (
    "/api/external/positions/coins",
    "/api/external/position-metrics/coin/BTC?start=2020-01-01T00:00:00Z&limit=5",
    "/api/external/segments",
    "/api/external/position-metrics/general?start=2020-01-01T00:00:00Z&limit=5",
    "/api/external/positions?coin=ETH&start=2020-01-01T00:00:00Z&limit=20",
    "/api/external/3/assets/liquidation-risk",
    "/v4/timeseries/asset-metrics?assets=btc&metrics=futures_aggregate_funding_rate_all_margin_8h_period&frequency=1h&page_size=5",
)


def test_ingest_and_two_servers_over_one_database_answer_alike_and_keys_change_while_they_run(database, tmp_path):
    ingest = start_ingest(database, tmp_path)
    servers = []
    try:
        wait_for_updates(database, 4)
        second_writer = hyperscope("ingest", "--store", database, "--scale", "tiny", "--data-dir", str(tmp_path / "x"))
        assert second_writer.returncode == 2
        assert "another hyperscope ingest is writing" in second_writer.stderr
        assert second_writer.stderr.count("\n") == 1

        servers = [Running("serve", "--store", database, "--data-dir", str(tmp_path / f"s{i}")) for i in range(2)]
        first_key = servers[0].key
        assert first_key and servers[1].key is None  # one first key per database, not per process

        created = hyperscope("keys", "create", "--store", database, "--name", "while-running", "--rate-limit", "5")
        assert created.returncode == 0, created.stderr
        new_key = created.stdout.strip().splitlines()[-1]
        for server in servers:  # the servers look for key changes once a second
            wait_until(lambda s=server: s.get("/api/external/segments", new_key).status_code == 200, "the new key")

        # identical answers: the newest height is read from the database by both, so ask until both agree
        for path in PATHS:
            for _ in range(50):  # ingest goes on meanwhile: retry until both answered at the same update
                answers = [s.get(path, first_key) for s in servers]
                if answers[0].content == answers[1].content:
                    break
                time.sleep(0.05)
            assert all(a.status_code == 200 for a in answers), (path, answers[0].text[:300])
            assert answers[0].json() == answers[1].json(), path

        # a limit of 5 a minute holds across both servers, exactly: not 5 each, not one more
        limited = hyperscope("keys", "create", "--store", database, "--name", "limited", "--rate-limit", "5")
        limited_key = limited.stdout.strip().splitlines()[-1]

        def attempt():
            for server in servers:  # each server's first answer that knows the key uses one request of it
                wait_until(lambda s=server: s.get("/api/external/segments", limited_key).status_code != 401, "key")
            return [servers[i % 2].get("/api/external/segments", limited_key).status_code for i in range(10)]

        codes = in_one_minute(attempt)
        assert codes.count(200) == 3 and codes.count(429) == 7, codes  # 2 went to learning the key

        status = hyperscope("status", "--store", database)
        assert status.returncode == 0 and "state updates" in status.stdout

        key_id = new_key.split("_")[1]
        assert hyperscope("keys", "revoke", key_id, "--store", database).returncode == 0
        for server in servers:
            wait_until(lambda s=server: s.get("/api/external/segments", new_key).status_code == 401, "revoked")
    finally:
        for server in servers:
            server.signal(signal.SIGTERM)
            assert server.finish()[0] == 0
        _, err = stop(ingest)
        assert ingest.returncode == 0, err


def test_serve_with_workers_shares_one_port_and_one_rate_limit(database, tmp_path):
    ingest = start_ingest(database, tmp_path)
    try:
        wait_for_updates(database, 2)
        server = Running("serve", "--store", database, "--workers", "2", "--data-dir", str(tmp_path / "s"))
        try:
            import psutil

            assert len(psutil.Process(server.proc.pid).children()) == 2
            created = hyperscope("keys", "create", "--store", database, "--rate-limit", "10")
            key = created.stdout.strip().splitlines()[-1]
            auth = {"Authorization": f"Bearer {key}"}
            wait_until(lambda: httpx.get(server.base + "/health").status_code in (200, 503), "the server")

            def requests():  # a new connection each time: the kernel hands them to either worker
                return [httpx.get(server.base + "/api/external/segments", headers=auth).status_code for _ in range(20)]

            codes = in_one_minute(requests)  # (a worker that has not seen the new key yet answers 401, uncounted)
            tenth = [i for i, c in enumerate(codes) if c == 200][9]
            assert codes.count(200) == 10 and set(codes[tenth + 1 :]) == {429}, codes

            # the dashboard's live stream, from whichever worker: each new state update the writer commits
            with httpx.Client(base_url=server.base, timeout=60) as web:
                signed = web.post("/dashboard/sign-in", content=f"key={key}&next=/dashboard")
                assert signed.status_code == 303 and "hs_session" in web.cookies
                heights: list[int] = []
                with web.stream("GET", "/dashboard/events") as stream:
                    deadline = time.monotonic() + 90
                    for line in stream.iter_lines():
                        if line.startswith("id: "):
                            heights.append(int(line[4:]))
                        if len(heights) == 2 or time.monotonic() > deadline:
                            break
                assert len(heights) == 2 and heights[1] > heights[0], heights
        finally:
            server.signal(signal.SIGTERM)
            assert server.finish()[0] == 0
    finally:
        stop(ingest)
