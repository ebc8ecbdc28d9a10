"""Open orders from a node: the L4 snapshot's exact shape, from a recorded file, the local info server's
`fileSnapshot` (a loopback server) or `hl-node compute-l4-snapshots` (a stand-in binary)."""

import json
import stat

import pytest
from tests.sources.hyperliquid.conftest import B_TEXT, A, abci_state, load, write_rmp
from tests.sources.hyperliquid.infoserver import InfoServer

from hyperscope.sources.hyperliquid.info_client import InfoClient
from hyperscope.sources.hyperliquid.node import NodeSource
from hyperscope.sources.hyperliquid.orders import parse_l4
from hyperscope.sources.hyperliquid.skips import Skips
from hyperscope.store import open_store

HEIGHT = 941000000
PERPS = {"BTC", "ETH", "xyz:GOLD"}


def test_the_l4_snapshot_reads_with_users_values_and_trigger_fields_and_only_perp_books():
    skips = Skips()
    height, orders = parse_l4(load("l4_snapshots.json"), PERPS, skips)
    assert height == 941000100 and orders.num_rows == 6  # the spot book (@107) left out, one bad order skipped
    assert skips.counts == {"orders that could not be read": 1}
    rows = {r["oid"]: r for r in orders.to_pylist()}
    assert rows[9002]["address"] == B_TEXT and rows[9002]["side"] == "B" and rows[9002]["limit_px"] == 59750.5
    assert rows[9002]["sz"] == 1.1 and rows[9002]["orig_sz"] == 1.5 and rows[9002]["tif"] == "Alo"
    assert rows[9002]["cloid"] == "0x00000000000000000000000000000abc"
    stop = rows[9004]
    assert stop["is_trigger"] and stop["trigger_px"] == 55000.0 and stop["trigger_condition"] == "Price below 55000"
    assert stop["tif"] is None and stop["reduce_only"] and stop["is_position_tpsl"] and stop["side"] == "A"
    assert stop["order_type"] == "Stop Market" and int(stop["timestamp"].timestamp() * 1000) == 1774946000000
    assert rows[9006]["coin"] == "xyz:GOLD" and rows[9001]["address"] == A


@pytest.mark.parametrize("shape", [{"not": "l4"}, [1, 2, 3], "text"])
def test_what_is_no_l4_snapshot_is_refused(shape):
    with pytest.raises(ValueError):
        parse_l4(shape, PERPS, Skips())


def node(tmp_path, **kwargs):
    folder = tmp_path / "hl"
    write_rmp(folder, abci_state())
    snapshot_s = 1774947600.123
    source = NodeSource(
        folder,
        tmp_path / "data" / "source.npz",
        watch=True,
        fills_wait_seconds=0,
        clock=lambda: snapshot_s + 60,
        **kwargs,
    )
    store = open_store(tmp_path / "s.duckdb")
    source.attach(store)
    ((height, path),) = source._due()
    update = source._update(height, path)
    store.close()
    return source, update


def beside_an_info_server(tmp_path, l4):
    """A watching node source whose local info server writes `l4` for `fileSnapshot` (and the server)."""
    server = InfoServer()
    server.l4 = l4
    client = InfoClient(server.url, 1200, timeout=5.0, retries=0)
    try:
        return (*node(tmp_path, info_server=client), server)
    finally:
        client.close()
        server.close()


def test_a_watching_node_source_takes_every_open_order_from_the_local_info_servers_l4_snapshot(tmp_path):
    source, update, server = beside_an_info_server(tmp_path, load("l4_snapshots.json"))
    (request,) = [r for r in server.requests if r["type"] == "fileSnapshot"]
    assert request["request"] == {"type": "l4Snapshots", "includeUsers": True, "includeTriggerOrders": True}
    assert request["includeHeightInOutput"] is True
    assert update.orders is not None and sorted(update.orders.column("oid").to_pylist()) == [
        9001,
        9002,
        9003,
        9004,
        9005,
        9006,
    ]
    assert "l4Snapshots of the local info server" in source.health()["orders"]
    assert not list((tmp_path / "data" / "l4").iterdir())  # the file it wrote for us is gone


def test_orders_of_a_later_state_than_the_snapshot_are_not_taken_for_it(tmp_path):
    source, update, _ = beside_an_info_server(tmp_path, [HEIGHT + 50_000, load("l4_snapshots.json")[1]])
    assert update.orders is None and "too far" in source.health()["orders"]


def fake_hl_node(tmp_path, body):
    script = tmp_path / "hl-node"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_without_an_info_server_hl_node_reads_the_snapshots_own_order_books(tmp_path):
    fixture = tmp_path / "l4.json"
    fixture.write_text(json.dumps(load("l4_snapshots.json")))
    args = tmp_path / "args"
    binary = fake_hl_node(tmp_path, f'echo "$@" > {args}\nfor last; do :; done\ncp {fixture} "$last"')
    source, update = node(tmp_path, hl_node=binary)
    called = args.read_text().split()
    assert called[:3] == ["--chain", "Mainnet", "compute-l4-snapshots"] and called[-2].endswith(f"{HEIGHT}.rmp")
    assert {"--include-users", "--include-trigger-orders"} <= set(called)
    assert update.orders is not None and update.orders.num_rows == 6
    assert "compute-l4-snapshots" in source.health()["orders"]


def test_a_failing_hl_node_costs_the_orders_not_the_snapshot(tmp_path):
    binary = fake_hl_node(tmp_path, 'echo "cannot open abci state" >&2\nexit 3')
    source, update = node(tmp_path, hl_node=binary)
    assert update.orders is None and update.positions.num_rows > 0
    assert "failed (3): cannot open abci state" in source.health()["orders"]
