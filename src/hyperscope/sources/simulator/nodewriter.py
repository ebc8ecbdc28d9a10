"""`hyperscope simulate --write-node-dir DIR`: the simulated market written as a node's data folder.

For every state update the simulated source makes, the folder gets what a node and the Info API would have
given at that height (see `hyperliquid/nodefiles.py` for the layout): the snapshot, the block of fills and
the block of ledger events since the previous one, and the recorded market data; before the first, a
block of the genesis positions' opening fills and staking deposits, and a leaderboard file with every
wallet's all-time PnL and volume at the first snapshot. `hyperscope backfill --source replay DIR` then
serves exactly what `hyperscope backfill` serves for the same market.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hyperscope.sources.hyperliquid.events import FILLS_DIR, MISC_DIR
from hyperscope.sources.hyperliquid.nodefiles import (
    RECORDS_DIR,
    append_block,
    deposit_events,
    fill_events,
    market_record_path,
    staking_events,
    write_json,
    write_snapshot,
)
from hyperscope.sources.hyperliquid.orders import L4_DIR, l4_document
from hyperscope.sources.simulator import nodeview
from hyperscope.sources.simulator.source import SimulatedSource


def _leaderboard(pnl: dict[str, float], volume: dict[str, float]) -> dict[str, object]:
    return {
        "leaderboardRows": [
            {
                "ethAddress": address,
                "accountValue": "0.0",
                "displayName": None,
                "prize": 0,
                "windowPerformances": [["allTime", {"pnl": repr(value), "roi": "0.0", "vlm": repr(volume[address])}]],
            }
            for address, value in pnl.items()
        ]
    }


def write_node_dir(root: Path, source: SimulatedSource, progress: Callable[[int, int], None] | None = None) -> int:
    """Write a new market's history up to the source's clock into `root`; returns the snapshots written."""
    sim = source.begin()
    start = source.config.start_height
    genesis = nodeview.genesis_fills(sim)
    append_block(root, FILLS_DIR, start, sim.time_ms, fill_events(genesis))
    staking = nodeview.genesis_staking(sim)
    append_block(root, MISC_DIR, start, sim.time_ms, staking_events(staking.staking_user, staking.staking, sim.time_ms))
    backlog = source.backlog()
    for i, step in enumerate(backlog):
        update = step()
        sim = source.sim
        if i == 0:
            write_json(root / RECORDS_DIR / "leaderboard.json", _leaderboard(*nodeview.anchors(sim)))
        moved = nodeview.deposits(sim)
        append_block(
            root,
            FILLS_DIR,
            update.height - 1,
            update.time,
            fill_events(update.fills) if update.fills is not None else [],
        )
        append_block(
            root, MISC_DIR, update.height - 1, update.time, deposit_events(moved.usdc_user, moved.usdc, update.time)
        )
        write_json(market_record_path(root, update.height), nodeview.market_record(sim))
        if update.orders is not None:  # an order snapshot: every open order, as an L4 snapshot file
            write_json(root / RECORDS_DIR / L4_DIR / f"{update.height}.json", l4_document(update.height, update.orders))
        write_snapshot(root, nodeview.snapshot(sim, update.height))
        if progress is not None:
            progress(i + 1, backlog.total)
    return backlog.total
