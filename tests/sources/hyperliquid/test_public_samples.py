"""Every public sample of real Hyperliquid data (tests/data/hyperliquid/public, SOURCES.md says where each was
published) read by the code that reads its kind, with the values checked, not only that it parses."""

import json
from pathlib import Path

import msgpack
import pytest

from hyperscope.sources.hyperliquid.contexts import MarketContexts, add_perp_contexts, perp_dex_names
from hyperscope.sources.hyperliquid.events import BlockStream, fills_table, flows_of
from hyperscope.sources.hyperliquid.info import InfoSource, Sweep
from hyperscope.sources.hyperliquid.skips import Skips
from hyperscope.sources.hyperliquid.snapshot import _positions

PUBLIC = Path(__file__).parents[2] / "data" / "hyperliquid" / "public"


def stream_of(tmp_path, name, kind):
    """A node folder holding one public ndjson file as its only hour file."""
    hour = tmp_path / kind / "hourly" / "20260611" / "1"
    hour.parent.mkdir(parents=True)
    hour.write_bytes((PUBLIC / name).read_bytes())
    return BlockStream(tmp_path / kind, complete=True)


def test_the_real_fill_line_is_a_liquidation_of_the_other_side(tmp_path):
    blocks, _ = stream_of(tmp_path, "node_fills_by_block.real.ndjson", "node_fills_by_block").until(2**62)
    assert [b.number for b in blocks] == [1052527672]
    rows = fills_table(blocks, {"SOL"}).to_pylist()
    assert len(rows) == 1
    fill = rows[0]
    assert fill["address"] == "0xa775d1bd91ee2cc4cae6113e5fd9c0c17b355277" and fill["coin"] == "SOL"
    assert (fill["px"], fill["sz"], fill["side"], fill["start_position"]) == (72.153, 0.58, "A", -162.6)
    assert fill["fee"] == -0.001255 and fill["tid"] == 340554939716632 and fill["dir"] == "Open Short"
    assert fill["liquidation"] is False  # the liquidator's side: the liquidated user is 0x5ef8...
    assert fills_table(blocks, {"BTC"}).num_rows == 0  # only the coins asked for


def test_the_real_misc_events_book_staking_once_and_a_spot_send_as_no_perp_flow(tmp_path):
    blocks, _ = stream_of(tmp_path, "misc_events_by_block.real.ndjson", "misc_events_by_block").until(2**62)
    assert [b.number for b in blocks] == [1030773868, 1030775110, 1030773830]  # as the file holds them
    skips = Skips()
    flows = flows_of(blocks, skips)
    assert flows.usdc == [] and flows.usdc_user == []  # send spot -> spot moves no perp cash
    assert flows.staking_user == ["0x163014fed389c392a0a214d2c4a28a73ec804741"] and flows.staking == [0.00982529]
    assert flows.funding_events == 1  # the CWithdrawal is only queued (is_finalized false): not booked yet
    assert not skips  # Delegation, ValidatorRewards, GossipPriorityAuctionRestart: known, nothing to book


def test_a_finalized_c_withdrawal_leaves_staking_once(tmp_path):
    line = json.loads((PUBLIC / "misc_events_by_block.real.ndjson").read_text().splitlines()[1])
    queued = next(e for e in line["events"] if "CWithdrawal" in e["inner"])
    done = json.loads(json.dumps(queued))
    done["inner"]["CWithdrawal"]["is_finalized"] = True
    (tmp_path / "misc").mkdir()
    path = tmp_path / "misc" / "events.ndjson"
    path.write_text(json.dumps({**line, "events": [queued, done]}) + "\n")
    hour = tmp_path / "misc_events_by_block" / "hourly" / "20260611" / "1"
    hour.parent.mkdir(parents=True)
    hour.write_bytes(path.read_bytes())
    blocks, _ = BlockStream(tmp_path / "misc_events_by_block", complete=True).until(2**62)
    flows = flows_of(blocks)
    assert flows.staking_user == ["0x033fb97dacc654b928de7129bf205f98eb15b1b1"] and flows.staking == [-11.38254596]


def test_the_real_vault_withdrawal_pays_the_net_amount_into_the_users_perp(tmp_path):
    stream = stream_of(tmp_path, "misc_events_by_block.quicknode_vaultWithdraw.ndjson", "misc_events_by_block")
    flows = flows_of(stream.until(2**62)[0])
    assert flows.usdc_user == ["0x025a744111554e57c66ba2069a8081249fbe5e11"] and flows.usdc == [7.203866]


@pytest.mark.parametrize(
    ("delta", "moves"),
    [
        ({"type": "vaultCreate", "vault": "0xv", "usdc": "100.0"}, [("0xu", -100.0)]),
        ({"type": "vaultDistribution", "vault": "0xv", "usdc": "5.5"}, [("0xu", 5.5)]),
        ({"type": "vaultLeaderCommission", "vault": "0xv", "usdc": "1.25"}, [("0xu", 1.25)]),
        (
            {"type": "perpDexClassTransfer", "dex": "xyz", "token": "USDC", "amount": "7.0", "toPerp": True},
            [("0xu", 7.0)],
        ),
        ({"type": "spotTransfer", "token": "PURR", "amount": "3", "usdcValue": "0.6", "destination": "0xd"}, []),
        ({"type": "rewardsClaim", "amount": "2.0"}, []),
        ({"type": "liquidation", "accountValue": "10.0", "leverageType": "Cross", "liquidatedPositions": []}, []),
    ],
)
def test_ledger_types_that_move_money_are_booked_and_the_rest_are_known(delta, moves):
    from hyperscope.sources.hyperliquid.events import Block

    skips = Skips()
    event = {
        "time": "2026-06-11T01:00:00.0",
        "hash": "0x0",
        "inner": {"LedgerUpdate": {"users": ["0xu"], "delta": delta}},
    }
    flows = flows_of([Block(1, 0, [event])], skips)
    assert list(zip(flows.usdc_user, flows.usdc, strict=True)) == moves and not skips


def test_an_unknown_ledger_type_is_counted():
    from hyperscope.sources.hyperliquid.events import Block

    skips = Skips()
    event = {"inner": {"LedgerUpdate": {"users": ["0xu"], "delta": {"type": "somethingNew", "usdc": "1"}}}}
    flows_of([Block(9, 0, [event])], skips)
    assert skips.counts == {"ledger updates of an unknown type": 1} and "somethingNew" in skips.summary()


def test_the_real_leverage_only_entry_is_a_preference_not_a_position():
    state = json.loads((PUBLIC / "abci_user_state.leverage_only.json").read_text())
    raw = msgpack.unpackb(msgpack.packb(state), raw=True)  # as the snapshot reader meets it
    skips = Skips()
    assert _positions(0, raw[b"p"][b"p"], skips, "user_to_state[0]") == [] and not skips
    assert raw[b"u"] == 10269381274  # its cash is read as any user's


def test_the_docs_market_data_and_perp_dexs_read_with_their_values():
    contexts = MarketContexts()
    add_perp_contexts(contexts, "", json.loads((PUBLIC / "metaAndAssetCtxs.docs_example.json").read_text()))
    hpos = contexts.coins["HPOS"]
    assert (hpos.max_leverage, hpos.sz_decimals) == (3, 0)
    assert set(contexts.coins) == {"BTC", "ETH", "HPOS"}
    assert all(c.funding == 0.0000125 for c in contexts.coins.values())
    assert perp_dex_names(json.loads((PUBLIC / "perpDexs.official_docs.json").read_text())) == ["", "test"]


def test_the_sdk_clearinghouse_state_positions_read_with_their_values():
    state = json.loads((PUBLIC / "clearinghouseState.sdk_cassette_2023.json").read_text())
    rows = Sweep()
    for item in state["assetPositions"]:
        InfoSource._position(rows, "0x" + "ab" * 20, "", item["position"])
    p = rows.positions
    assert len(p["coin"]) == len(state["assetPositions"]) == 12
    btc = p["coin"].index("BTC")
    assert (p["size"][btc], p["entry_px"][btc], p["leverage"][btc], p["leverage_type"][btc]) == (
        -0.00785,
        26951.0,
        20.0,
        "cross",
    )
    eth = p["coin"].index("ETH")
    assert p["liquidation_px"][eth] is None  # null upstream: no liquidation price
    assert p["funding"][btc] == 0.0  # 2023 format: no cumFunding
