"""Fills and misc events by block, market data responses, and the leaderboard file, in their upstream shapes."""

import pytest
from tests.sources.hyperliquid.conftest import DATA, load

from hyperscope.sources.hyperliquid.build import Anchors, WalletBook
from hyperscope.sources.hyperliquid.contexts import MarketContexts, add_perp_contexts, perp_dex_names
from hyperscope.sources.hyperliquid.events import FILLS_DIR, BlockStream, fills_table, flows_of
from hyperscope.sources.hyperliquid.snapshot import InvalidSnapshot

LINES = (DATA / "node_fills_by_block.ndjson").read_bytes().splitlines(keepends=True)


def fills_folder(tmp_path, split_last_line=False):
    """Block 941006632 (block time 08:59:59.99) was processed after 09:00: it sits in the file of hour 9."""
    root = tmp_path / FILLS_DIR
    (root / "hourly" / "20260331").mkdir(parents=True)
    (root / "hourly" / "20260331" / "8").write_bytes(LINES[0])
    last = LINES[2][:40] if split_last_line else LINES[2]
    (root / "hourly" / "20260331" / "9").write_bytes(LINES[1] + last)
    return root


def test_blocks_are_taken_by_block_number_across_the_hour_files(tmp_path):
    stream = BlockStream(fills_folder(tmp_path))
    blocks, reached = stream.until(941006632)
    assert [b.number for b in blocks] == [941006631, 941006632] and reached  # 632 came from hour 9's file
    blocks, reached = stream.until(941006640)
    assert [b.number for b in blocks] == [941006633] and not reached  # the node may still be writing


def test_a_line_being_written_is_left_for_later(tmp_path):
    root = fills_folder(tmp_path, split_last_line=True)
    stream = BlockStream(root)
    blocks, _ = stream.until(941006640)
    assert [b.number for b in blocks] == [941006631, 941006632]
    with open(root / "hourly" / "20260331" / "9", "ab") as f:
        f.write(LINES[2][40:])
    blocks, _ = stream.until(941006640)
    assert [b.number for b in blocks] == [941006633]


def test_a_stream_resumes_at_the_first_block_not_handed_out(tmp_path):
    root = fills_folder(tmp_path)
    stream = BlockStream(root)
    stream.until(941006631)  # reads everything, hands out one block
    resumed = BlockStream(root)
    resumed.restore(stream.state())
    assert [b.number for b in resumed.until(941006640)[0]] == [941006632, 941006633]


def test_fills_become_perp_fill_rows(tmp_path):
    blocks, _ = BlockStream(fills_folder(tmp_path)).until(941006640)
    table = fills_table(blocks, {"BTC", "ETH", "xyz:GOLD"})
    rows = table.to_pylist()
    assert [r["coin"] for r in rows] == ["xyz:GOLD", "xyz:GOLD", "BTC", "BTC", "ETH"]  # the spot @107 fill is not
    liquidated = [r["address"] for r in rows if r["liquidation"]]
    assert liquidated == ["0x3333333333333333333333333333333333333333"]  # not the liquidator's side
    assert rows[0]["start_position"] == -80.25 and rows[0]["px"] == 4100.5 and rows[0]["closed_pnl"] == 0.3135


def test_opening_fills_teach_open_times(tmp_path):
    blocks, _ = BlockStream(fills_folder(tmp_path)).until(941006640)
    book = WalletBook()
    book.learn_opens(fills_table(blocks, {"BTC", "ETH", "xyz:GOLD"}))
    import pyarrow as pa

    keys = pa.array(
        [
            "0x2222222222222222222222222222222222222222|xyz:GOLD",
            "0x4444444444444444444444444444444444444444|BTC",  # a flip opens a new position
            "0x1111111111111111111111111111111111111111|xyz:GOLD",
        ]
    )  # a close opens nothing
    hints = book.hints(keys).cast(pa.int64()).to_pylist()
    assert hints == [1774947599852, 1774947599990, None]


def test_a_malformed_fill_is_rejected_naming_its_block(tmp_path):
    root = fills_folder(tmp_path)
    (root / "hourly" / "20260331" / "10").write_bytes(
        b'{"block_time":"2026-03-31T10:00:00.0","block_number":941006700,"events":[["0x1",{"coin":"BTC"}]]}\n'
    )
    blocks, _ = BlockStream(root).until(941006700)
    with pytest.raises(InvalidSnapshot, match="block 941006700 event 0"):
        fills_table(blocks, {"BTC"})


def test_misc_events_give_perp_flows_and_staking(tmp_path):
    root = tmp_path / "misc_events_by_block" / "hourly" / "20260611"
    root.mkdir(parents=True)
    (root / "1").write_bytes((DATA / "misc_events_by_block.ndjson").read_bytes())
    blocks, _ = BlockStream(tmp_path / "misc_events_by_block").until(2**40)
    flows = flows_of(blocks)
    two, one = "0x" + "22" * 20, "0x" + "11" * 20
    assert list(zip(flows.usdc_user, flows.usdc, strict=True)) == [
        (two, 1000.5),
        (two, -200.0),
        (one, 50.0),
    ]  # spot sends: none
    assert flows.staking_user == [one] and flows.staking == [0.00982529] and flows.funding_events == 1


def test_perp_dexs_in_both_casings_and_contexts_aligned_by_index():
    assert perp_dex_names(load("perp_dexs_snake.json")) == ["", "test"]
    assert perp_dex_names(load("perp_dexs_camel.json")) == ["", "xyz"]
    ctx = MarketContexts()
    add_perp_contexts(ctx, "", load("meta_and_ctxs_main.json"))
    add_perp_contexts(ctx, "xyz", load("meta_and_ctxs_xyz.json"))
    assert (
        ctx.coins["BTC"].mark_px == 60011.0 and ctx.coins["ETH"].premium is None and ctx.coins["MATIC"].mid_px is None
    )
    assert ctx.coins["xyz:GOLD"].funding == 0.00000625 and ctx.coins["ETH"].sz_decimals == 4
    meta, ctxs = load("meta_and_ctxs_main.json")
    with pytest.raises(InvalidSnapshot, match="do not align"):
        add_perp_contexts(MarketContexts(), "", [meta, ctxs[:2]])
    ctxs[0]["markPx"] = "NaN"
    with pytest.raises(InvalidSnapshot, match="BTC markPx"):
        add_perp_contexts(MarketContexts(), "", [meta, ctxs])


def test_leaderboard_windows_are_found_by_name():
    anchors = Anchors.from_leaderboard(load("leaderboard.json"))
    assert anchors.pnl == {"0x" + "11" * 20: 2500000.25, "0x" + "44" * 20: -15000.0}  # no allTime window: skipped
    assert anchors.volume["0x" + "11" * 20] == 123456789.0


def test_the_open_times_of_closed_positions_are_forgotten_in_bulk():
    import numpy as np
    import pyarrow as pa

    from hyperscope.domain.state import FILLS

    n = 30_000
    fills = pa.table({
        "address": [f"0x{i:040x}" for i in range(n)], "coin": ["BTC"] * n, "px": np.ones(n), "sz": np.ones(n),
        "side": ["B"] * n, "time": pa.array(np.arange(n)).cast(FILLS.field("time").type), "start_position": np.zeros(n),
        "dir": ["Open Long"] * n, "closed_pnl": np.zeros(n), "fee": np.zeros(n), "tid": np.arange(n),
        "liquidation": np.zeros(n, bool),
    }, schema=FILLS)  # fmt: skip
    book = WalletBook()
    book.learn_opens(fills)
    still_open = pa.array([f"0x{7:040x}|BTC"])
    assert book.hints(still_open).cast(pa.int64()).to_pylist() == [7]
    assert len(book.open_keys) == 1  # bounded by the open positions, not by every position ever opened
