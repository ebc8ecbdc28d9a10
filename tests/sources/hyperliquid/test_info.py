"""The info client and `--source info`, against a real HTTP server on the loopback interface."""

import threading

import pytest
from tests.sources.hyperliquid.conftest import B_TEXT, DATA, A, C
from tests.sources.hyperliquid.infoserver import InfoServer, position_state

from hyperscope.domain.state import validate
from hyperscope.errors import InvalidStateUpdate, SourceUnavailable
from hyperscope.sources.hyperliquid.info import InfoSource, read_watch_list
from hyperscope.sources.hyperliquid.info_client import InfoClient, WeightBudget, fetch_market
from hyperscope.sources.hyperliquid.node import NodeSource
from hyperscope.sources.hyperliquid.snapshot import users_with_positions


@pytest.fixture
def server():
    s = InfoServer()
    yield s
    s.close()


class FakeTime:
    def __init__(self):
        self.now, self.slept = 0.0, []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_the_weight_budget_is_kept_on_the_client_side(server):
    t = FakeTime()
    client = InfoClient(server.url, budget=WeightBudget(60, t.clock, t.sleep), sleep=t.sleep)
    for _ in range(40):  # 40 x weight 2 = 80 against 60 per minute
        client.post({"type": "clearinghouseState", "user": A})
    assert sum(t.slept) == pytest.approx(20.0) and len(server.requests) == 40
    client.post({"type": "metaAndAssetCtxs"})  # weight 20: another 20 s
    assert sum(t.slept) == pytest.approx(40.0) and client.weight_used == 100


def test_429_and_5xx_are_retried_with_backoff_then_reported(server):
    t = FakeTime()
    client = InfoClient(server.url, budget=WeightBudget(10_000, t.clock, t.sleep), sleep=t.sleep, retries=3)
    server.fail_next = 2
    assert client.post({"type": "perpDexs"})[0] is None
    assert t.slept == [1.0, 2.0]
    server.fail_next, server.fail_status = 10, 502
    with pytest.raises(SourceUnavailable, match="HTTP 502 \\(after 3 retries\\)"):
        client.post({"type": "perpDexs"})
    assert t.slept[2:] == [1.0, 2.0, 4.0]


def test_an_unreachable_server_is_a_source_unavailable():
    client = InfoClient("http://127.0.0.1:9/info", retries=1, sleep=lambda s: None, timeout=0.5)
    with pytest.raises(SourceUnavailable, match="127.0.0.1:9"):
        client.post({"type": "perpDexs"})


def test_the_market_recording_parses_both_dexes(server):
    record = fetch_market(InfoClient(server.url))
    assert [dex for dex, _ in record["metaAndAssetCtxs"]] == ["", "xyz"]


def local_source(server, rmp, watch=()):
    return InfoSource(
        InfoClient(server.url),
        lambda: list(watch) + users_with_positions(rmp),
        local=True,
        market=InfoClient(server.url),
    )


def test_a_sweep_of_a_local_server_takes_the_nodes_own_values(server, rmp):
    server.users[(A, "")] = position_state("ETH", "2.5", "2000.0", "6250.25", "1500.5", "10000.0")
    server.users[(B_TEXT, "")] = position_state("ETH", "-2.5", "2040.0", "6250.25", None, "7000.0")
    server.users[(A, "xyz")] = position_state("GOLD", "2.0", "4000.0", "8200.4", "3700.0", "-7200.0", cross=False)
    server.users[(C.lower(), "xyz")] = position_state(
        "GOLD", "-2.0", "4200.0", "8200.4", "4500.0", "9000.0", cross=False
    )
    server.spot[A] = {
        "balances": [
            {"coin": "USDC", "token": 0, "hold": "0.0", "total": "150.0", "entryNtl": "0.0"},
            {"coin": "HYPE", "token": 150, "hold": "0.0", "total": "20.0", "entryNtl": "0.0"},
        ]
    }
    server.vaults[A] = [{"vaultAddress": B_TEXT, "equity": "742.5", "lockedUntilTimestamp": 0}]
    server.staking[A] = {
        "delegated": "10.0",
        "undelegated": "1.0",
        "totalPendingWithdrawal": "1.0",
        "nPendingWithdrawals": 1,
    }
    source = local_source(server, rmp)
    update = validate(source.sweep())
    pos = {(r["address"], r["coin"]): r for r in update.positions.to_pylist()}
    assert pos[(A, "ETH")]["liquidation_px"] == 1500.5 and pos[(B_TEXT, "ETH")]["liquidation_px"] is None
    assert pos[(A, "xyz:GOLD")]["leverage_type"] == "isolated" and pos[(A, "ETH")]["funding"] == -2.5
    wallet = {r["address"]: r for r in update.wallets.to_pylist()}[A]
    assert wallet["spot_equity"] == pytest.approx(150 + 20 * 31.0)
    assert wallet["vault_equity"] == 742.5 and wallet["staking_equity"] == pytest.approx(12 * 31.0)
    assert not update.partial and source.health()["coverage"] == "wallets with positions on the node"


def test_the_public_api_covers_a_watch_list_only_and_says_so(server, tmp_path):
    watch = tmp_path / "watch.txt"
    watch.write_text(f"# whales\n{A}\n{A.upper().replace('0X', '0x')}\n")
    assert read_watch_list(watch) == [A]
    assert read_watch_list(DATA / "leaderboard.json")[0] == "0x" + "11" * 20  # largest account value first
    server.users[(A, "")] = position_state("ETH", "2.5", "2000.0", "6250.25", "1500.5", "10000.0")
    source = InfoSource(InfoClient(server.url), lambda: read_watch_list(watch), local=False)
    update = source.sweep()
    assert update.partial and validate(update).positions.num_rows == 1  # long without its short: allowed
    assert "watched wallets only (1)" in source.health()["coverage"]
    full = type(update)(**{**update.__dict__, "partial": False})
    with pytest.raises(InvalidStateUpdate, match="long size 2.5 != short size 0"):
        validate(full)
    assert {r["type"] for r in server.requests} >= {"clearinghouseState", "spotClearinghouseState"}
    assert "delegatorSummary" not in {r["type"] for r in server.requests}  # weight 20 each: local servers only


def test_a_wallet_the_server_refuses_is_skipped_not_fatal(server, rmp):
    source = local_source(server, rmp, watch=["0x" + "zz" * 20])
    update = source.sweep()
    assert source.skipped == 1 and update.wallets.num_rows == 3


def test_a_watching_node_source_fetches_and_records_market_data(server, rmp, tmp_path):
    records = tmp_path / "market"
    from hyperscope.sources.hyperliquid.snapshot import read_snapshot

    written = read_snapshot(rmp).time_ms / 1000
    source = NodeSource(
        rmp.parents[2],
        tmp_path / "source.npz",
        watch=True,
        market=InfoClient(server.url),
        records=records,
        fills_wait_seconds=0,
        clock=lambda: written + 30,
    )  # read as it lands

    update = source.next_update(threading.Event())
    marks = dict(
        zip(update.markets.column("coin").to_pylist(), update.markets.column("mark_px").to_pylist(), strict=True)
    )
    assert marks["ETH"] == 2500.1 and (records / "941000000.json").is_file()
    assert "Info API" in source.health()["market_data"]


def test_without_the_info_api_a_node_source_uses_oracle_prices_and_says_so(rmp, tmp_path):
    from hyperscope.sources.hyperliquid.snapshot import read_snapshot

    client = InfoClient("http://127.0.0.1:9/info", retries=0, timeout=0.5)
    written = read_snapshot(rmp).time_ms / 1000
    source = NodeSource(
        rmp.parents[2],
        tmp_path / "source.npz",
        watch=True,
        market=client,
        fills_wait_seconds=0,
        clock=lambda: written + 30,
    )
    update = source.next_update(threading.Event())
    assert update.markets.column("mark_px").to_pylist()[:2] == [60000.0, 2500.0]
    assert source.health()["market_data"].startswith("oracle prices only: the Info API could not be reached")


def test_next_to_a_node_the_wallets_of_recent_fills_are_swept_too(server, rmp):
    from tests.sources.hyperliquid.test_events import fills_folder

    from hyperscope.sources.hyperliquid.info import recent_traders

    node = rmp.parents[2]
    fills_folder(node)
    traders = recent_traders(node)
    assert traders == ["0x" + c * 20 for c in ("33", "44", "11", "22")]  # the newest hour's file: blocks 632, 633
