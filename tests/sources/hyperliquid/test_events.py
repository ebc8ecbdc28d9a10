"""Fills and misc events by block, market data responses, and the leaderboard file, in their upstream shapes."""

import pytest
from tests.sources.hyperliquid.conftest import DATA, load

from hyperscope.sources.hyperliquid.build import Anchors, WalletBook
from hyperscope.sources.hyperliquid.contexts import MarketContexts, add_perp_contexts, perp_dex_names
from hyperscope.sources.hyperliquid.events import FILLS_DIR, Block, BlockStream, fills_table, flows_of
from hyperscope.sources.hyperliquid.skips import Skips
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


def test_a_malformed_fill_is_skipped_and_counted_naming_its_block(tmp_path):
    root = fills_folder(tmp_path)
    (root / "hourly" / "20260331" / "10").write_bytes(
        b'{"block_time":"2026-03-31T10:00:00.0","block_number":941006700,"events":[["0x1",{"coin":"BTC"}],'
        + LINES[0].split(b'"events":[', 1)[1].rstrip(b"\n").removesuffix(b"]}")
        + b"]}\n"
    )
    blocks, _ = BlockStream(root).until(941006700)
    skips = Skips()
    table = fills_table(blocks, {"BTC", "ETH", "xyz:GOLD"}, skips)
    assert skips.counts == {"fills that are not [user, fill]": 1}
    assert "block 941006700 event 0" in skips.summary()
    whole = fills_table(BlockStream(fills_folder(tmp_path / "again")).until(941006640)[0], {"BTC", "ETH", "xyz:GOLD"})
    assert table.num_rows > whole.num_rows  # the block's good events are kept


def test_a_line_that_is_not_a_block_is_skipped_once_and_the_stream_goes_on(tmp_path):
    root = fills_folder(tmp_path)
    hour9 = root / "hourly" / "20260331" / "9"
    hour9.write_bytes(LINES[1] + b'{"not": "a block"}\n' + b"\x00garbage\n" + LINES[2])
    stream = BlockStream(root)
    blocks, _ = stream.until(941006640)
    assert [b.number for b in blocks] == [941006631, 941006632, 941006633]
    assert stream.skips.counts == {"lines that are not blocks": 2}
    assert f"20260331/9 line after byte {len(LINES[1])}" in stream.skips.summary()  # where the bad line starts
    with hour9.open("ab") as f:  # the position moved past them: more blocks come, nothing is counted twice
        f.write(LINES[2].replace(b"941006633", b"941006634"))
    assert [b.number for b in stream.until(941006640)[0]] == [941006634]
    assert sum(stream.skips.counts.values()) == 2


def test_a_cut_line_is_final_once_a_later_file_exists(tmp_path):
    root = fills_folder(tmp_path, split_last_line=True)
    stream = BlockStream(root)
    stream.until(941006640)
    assert not stream.skips  # hour 9 is the newest file: its last line may still be being written
    (root / "hourly" / "20260331" / "10").write_bytes(LINES[2].replace(b"941006633", b"941006700"))
    blocks, _ = stream.until(941006700)
    assert [b.number for b in blocks] == [941006700]
    assert stream.skips.counts == {"cut last lines": 1}


def test_a_finished_folder_reads_a_last_line_without_its_newline_and_counts_a_cut_one(tmp_path):
    root = fills_folder(tmp_path)
    hour9 = root / "hourly" / "20260331" / "9"
    hour9.write_bytes(LINES[1] + LINES[2].rstrip(b"\n"))  # whole, but no newline at the end
    stream = BlockStream(root, complete=True)
    assert [b.number for b in stream.until(941006640)[0]] == [941006631, 941006632, 941006633]
    assert not stream.skips
    hour9.write_bytes(LINES[1] + LINES[2][:40])
    cut = BlockStream(root, complete=True)
    assert [b.number for b in cut.until(941006640)[0]] == [941006631, 941006632]
    assert cut.skips.counts == {"cut last lines": 1}


def test_a_misc_event_of_an_unknown_shape_is_skipped_and_the_rest_booked(tmp_path):
    good = {"time": "2026-03-31T10:00:00.0", "hash": "0x0", "inner": {"CDeposit": {"user": "0xAB", "amount": "2.5"}}}
    bad = [
        {"inner": {"LedgerUpdate": {"users": ["0x1"], "delta": {"type": "deposit"}}}},  # no usdc
        {"inner": {"CDeposit": {"user": "0x2"}}},
        {"inner": "text"},
        "not an event",
    ]
    skips = Skips()
    flows = flows_of([Block(1, 0, [*bad, good])], skips)
    assert flows.staking_user == ["0xab"] and flows.staking == [2.5] and flows.usdc == []
    assert skips.counts == {"misc events of an unknown shape": 4}


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
    fills = pa.table(
        {
            "address": [f"0x{i:040x}" for i in range(n)],
            "coin": ["BTC"] * n,
            "px": np.ones(n),
            "sz": np.ones(n),
            "side": ["B"] * n,
            "time": pa.array(np.arange(n)).cast(FILLS.field("time").type),
            "start_position": np.zeros(n),
            "dir": ["Open Long"] * n,
            "closed_pnl": np.zeros(n),
            "fee": np.zeros(n),
            "tid": np.arange(n),
            "liquidation": np.zeros(n, bool),
        },
        schema=FILLS,
    )
    book = WalletBook()
    book.learn_opens(fills)
    still_open = pa.array([f"0x{7:040x}|BTC"])
    assert book.hints(still_open).cast(pa.int64()).to_pylist() == [7]
    assert len(book.open_keys) == 1  # bounded by the open positions, not by every position ever opened


def test_batches_are_bounded_and_reading_stops_at_the_first_block_past_the_height(tmp_path):
    """A catch-up over hours of a busy node's files holds one batch at a time, and a snapshot's pass reads
    no further than the first block past its height."""
    import orjson

    root = tmp_path / FILLS_DIR
    hour = root / "hourly" / "20260331" / "9"
    hour.parent.mkdir(parents=True)
    first = orjson.loads(LINES[0])
    lines = [orjson.dumps({**first, "block_number": 941006631 + k}) + b"\n" for k in range(50)]
    hour.write_bytes(b"".join(lines))
    stream = BlockStream(root)
    per_block = len(first["events"])
    batches = list(stream.batches(941006631 + 29, max_events=5 * per_block))
    assert [len(b) for b in batches] == [5, 5, 5, 5, 5, 5]  # 30 blocks, never more than 5 at a time
    assert stream.reached and stream.pending[0].number == 941006631 + 30
    assert stream.offset == sum(len(x) for x in lines[:31])  # the 31st block read, not one byte more
    rest = [b.number for batch in stream.batches(941006631 + 99) for b in batch]
    assert rest == list(range(941006631 + 30, 941006631 + 50)) and not stream.reached


def test_a_fill_stamped_far_from_its_block_is_skipped_and_counted(tmp_path):
    # a fill carries its block's time; one stamped two days after it is not believed (the state update would be
    # refused whole for it), and the block's other fills are kept
    import json

    block = json.loads(LINES[0])
    block["events"][0][1]["time"] += 2 * 86_400_000
    root = fills_folder(tmp_path)
    (root / "hourly" / "20260331" / "8").write_bytes(json.dumps(block).encode() + b"\n")
    blocks, _ = BlockStream(root).until(941006640)
    skips = Skips()
    table = fills_table(blocks, {"BTC", "ETH", "xyz:GOLD"}, skips)
    assert skips.counts == {"fills stamped a day after their block or 400 days before": 1}
    assert f"block {block['block_number']} event 0" in skips.summary()
    whole = fills_table(BlockStream(fills_folder(tmp_path / "again")).until(941006640)[0], {"BTC", "ETH", "xyz:GOLD"})
    assert table.num_rows == whole.num_rows - 1
