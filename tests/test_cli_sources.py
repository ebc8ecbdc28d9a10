"""The source commands as a user runs them: simulate a node folder, replay it, serve it over HTTP."""

import re
import signal

import httpx

from tests.process import Running, hyperscope


def metrics_without_times(data):
    from hyperscope.store import open_store

    store = open_store(data / "hyperscope.duckdb")
    try:
        rows = store._dicts("SELECT * FROM metrics_coin ORDER BY height, coin", [])
        return [{k: v for k, v in r.items() if k not in ("id", "created_at", "time")} for r in rows]
    finally:
        store.close()


def test_simulate_then_replay_serves_the_simulators_numbers(tmp_path):
    folder = tmp_path / "node"
    made = hyperscope("simulate", "--scale", "tiny", "--hours", "1", "--write-node-dir", str(folder))
    assert made.returncode == 0, made.stderr
    assert "wrote 4 snapshots" in made.stdout
    again = hyperscope("simulate", "--scale", "tiny", "--hours", "1", "--write-node-dir", str(folder))
    assert again.returncode == 2 and "not an empty folder" in again.stderr
    replayed = hyperscope("backfill", "--source", "replay", str(folder), "--data-dir", str(tmp_path / "r"))
    assert replayed.returncode == 0, replayed.stderr
    direct = hyperscope("backfill", "--scale", "tiny", "--hours", "1", "--data-dir", str(tmp_path / "d"))
    assert direct.returncode == 0, direct.stderr
    # two runs begin their markets at different moments: every number matches, timestamps aside
    assert metrics_without_times(tmp_path / "r") == metrics_without_times(tmp_path / "d")


def test_source_flag_mistakes_are_one_line(tmp_path):
    for args, words in [
        (("backfill", "--source", "replay"), "--node-data"),
        (("backfill", "--source", "replay", str(tmp_path)), "no periodic_abci_states/"),
        (("backfill", "--source", "replay", str(tmp_path / "missing")), "is not a folder"),
        (("backfill", "--source", "nodes"), "--source"),
        (("backfill", "--source", "info", "--info-url", "https://api.hyperliquid.xyz/info"), "--watch-list"),
    ]:
        result = hyperscope(*args, "--data-dir", str(tmp_path / "d"))
        assert result.returncode == 2 and words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_run_over_a_replayed_folder_serves_the_api(tmp_path):
    folder = tmp_path / "node"
    assert hyperscope("simulate", "--scale", "tiny", "--hours", "1", "--write-node-dir", str(folder)).returncode == 0
    run = Running("run", "--source", "replay", str(folder), "--data-dir", str(tmp_path / "d"))
    try:
        coins = run.get("/api/external/positions/coins", run.key).json()
        assert coins and all(float(c["totalValue"]) >= 0 for c in coins)
        health = run.get("/health").json()
        assert health["source"]["kind"] == "replay"
        assert health["source"]["market_data"] == "recorded at the snapshot's time (simulator)"
        assert health["source"]["orders"].startswith("recorded L4 file")
        # the node store serves 5-minute order snapshots: the link, then every open order of a coin
        link = run.get("/api/external/orders/5m-snapshots/coins/BTC/download", run.key).json()["downloadUrl"]
        orders = httpx.get(link, timeout=30).json()
        assert orders and all(o["coin"] == "BTC" and float(o["limitPx"]) > 0 for o in orders)
        assert health["status"] == "ok" and health["staleAfterSeconds"] is None  # history is never stale
    finally:
        run.signal(signal.SIGTERM)
        code, stderr = run.finish()
    assert code == 0, stderr


def test_backfill_from_an_info_server_on_the_loopback_interface(tmp_path):
    from tests.sources.hyperliquid.infoserver import InfoServer, position_state

    server = InfoServer()
    a, b = "0x" + "01" * 20, "0x" + "02" * 20
    server.users[(a, "")] = position_state("ETH", "2.5", "2000.0", "6250.25", "1500.5", "10000.0")
    server.users[(b, "")] = position_state("ETH", "-2.5", "2040.0", "6250.25", None, "7000.0")
    watch = tmp_path / "watch.txt"
    watch.write_text(f"{a}\n{b}\n")
    try:
        result = hyperscope(
            "backfill",
            "--source",
            "info",
            "--info-url",
            server.url,
            "--market-info-url",
            server.url,
            "--watch-list",
            str(watch),
            "--data-dir",
            str(tmp_path / "d"),
        )
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert re.search(r"open positions\s*│\s*2\s*│", result.stdout), result.stdout
    assert "HTTP Request" not in result.stderr  # no log line per request


def test_a_replay_with_a_rejected_snapshot_says_how_many_were_stored_and_rejected(tmp_path):
    folder = tmp_path / "node"
    assert hyperscope("simulate", "--scale", "tiny", "--hours", "1", "--write-node-dir", str(folder)).returncode == 0
    bad = sorted((folder / "periodic_abci_states").glob("*/*.rmp"))[1]
    bad.write_bytes(bad.read_bytes()[:200])  # cut: not a snapshot any more
    replayed = hyperscope("backfill", "--source", "replay", str(folder), "--data-dir", str(tmp_path / "r"))
    assert replayed.returncode == 0, replayed.stderr
    assert "stored 3 state update(s); 1 rejected whole" in replayed.stderr, replayed.stderr


def test_keys_create_help_names_every_scope():
    from hyperscope.service.keys import SCOPES

    shown = " ".join(hyperscope("keys", "create", "--help").stdout.split())
    assert all(scope in shown for scope in SCOPES), shown
