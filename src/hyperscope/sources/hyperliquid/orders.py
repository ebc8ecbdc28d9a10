"""Every open order of one moment, from a node: the L4 snapshot (sources.md section 1.7).

Its shape, with users and heights: `[height, [[coin, [[[user, order], ...bids], [[user, order], ...asks]]], ...]]`,
each order `{coin, side, limitPx, sz, oid, timestamp, triggerCondition, isTrigger, triggerPx, isPositionTpsl,
reduceOnly, orderType, origSz, tif, cloid, children}` with prices and sizes as decimal text. It lists spot books
too (`@107`, `PURR/USDC`): only the perp coins of the snapshot are kept. An order that does not read is
skipped and counted; a file that is not an L4 snapshot at all gives no orders, with the reason.

Where a node source finds one for the snapshot at height H, first that serves:
1. a file `{node data}/hyperscope/l4/{H}.json` (a replay's recording, or an operator's own
   `hl-node compute-l4-snapshots` run);
2. the node's local info server (`fileSnapshot` of `l4Snapshots`), which writes the *latest* state to a file
   on this machine: used only for a snapshot read as it lands, when the heights are close;
3. `hl-node compute-l4-snapshots --include-users --include-trigger-orders {H}.rmp {out}` when the setting
   `hl_node` names the node binary: the snapshot's own order books, at exactly its height.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from hyperscope.domain.state import ORDERS
from hyperscope.errors import SourceUnavailable
from hyperscope.sources.hyperliquid.skips import Skips

log = logging.getLogger("hyperscope.sources.hyperliquid")

L4_DIR = "l4"  # under the node data folder's `hyperscope/` records
CLOSE_BLOCKS = 5_000  # an info server's latest state this far past the snapshot (~6 min) still describes it
HL_NODE_SECONDS = 600.0  # a compute-l4-snapshots run that takes longer is abandoned
ORDER_COLUMNS = tuple(f.name for f in ORDERS)


def l4_request(out: Path) -> dict[str, Any]:
    return {
        "type": "fileSnapshot",
        "request": {"type": "l4Snapshots", "includeUsers": True, "includeTriggerOrders": True},
        "outPath": str(out),
        "includeHeightInOutput": True,
    }


def parse_l4(data: Any, coins: set[str], skips: Skips) -> tuple[int | None, pa.Table]:
    """(its height or None, the ORDERS table of the `coins` books). ValueError when it is no L4 snapshot."""
    height = None
    if isinstance(data, list) and len(data) == 2 and isinstance(data[0], int) and isinstance(data[1], list):
        height, data = data
    if not isinstance(data, list):
        raise ValueError("an L4 snapshot is a list of [coin, [bids, asks]]")
    rows: dict[str, list[Any]] = {f.name: [] for f in ORDERS}
    books = 0
    for i, book in enumerate(data):
        if not (isinstance(book, list) and len(book) == 2 and isinstance(book[0], str)):
            skips.add("order books that could not be read", f"[{i}]")
            continue
        books += 1
        coin, sides = book
        if coin not in coins:
            continue  # a spot book, or a coin the snapshot does not list
        if not (isinstance(sides, list) and len(sides) == 2):
            skips.add("order books that could not be read", f"{coin}")
            continue
        for orders in sides:
            for entry in orders if isinstance(orders, list) else ():
                try:
                    _add(rows, coin, entry)
                except (ValueError, TypeError, KeyError, IndexError) as e:
                    skips.add("orders that could not be read", f"{coin}: {type(e).__name__}: {e!s:.60}")
    if data and not books:
        raise ValueError("no entry is a [coin, [bids, asks]] book")
    return height, pa.table(rows, schema=ORDERS)


def _add(rows: dict[str, list[Any]], coin: str, entry: Any) -> None:
    user, order = entry  # an order without its user (no includeUsers) cannot be served: ValueError
    if not (isinstance(user, str) and len(user) == 42 and user[:2].lower() == "0x"):
        raise ValueError(f"user {user!r:.50} is not an address")
    int(user[2:], 16)
    side = order["side"]
    if side not in ("B", "A"):
        raise ValueError(f"side {side!r:.10}")
    values = (
        user.lower(),
        int(order["oid"]),
        coin,
        side,
        float(order["limitPx"]),
        float(order["sz"]),
        float(order.get("origSz", order["sz"])),
        int(order["timestamp"]),
        str(order.get("orderType", "Limit")),
        order.get("tif"),
        bool(order.get("reduceOnly", False)),
        bool(order.get("isTrigger", False)),
        float(order.get("triggerPx", 0) or 0),
        str(order.get("triggerCondition", "N/A")),
        bool(order.get("isPositionTpsl", False)),
        order.get("cloid"),
    )
    for name, value in zip(ORDER_COLUMNS, values, strict=True):
        rows[name].append(value)


def l4_document(height: int, orders: pa.Table) -> list[Any]:
    """An ORDERS table in the L4 snapshot's shape (the simulator's node writer; tests)."""
    books: dict[str, list[list[Any]]] = {}
    for r in orders.to_pylist():
        order = {
            "coin": r["coin"],
            "side": r["side"],
            "limitPx": repr(r["limit_px"]),
            "sz": repr(r["sz"]),
            "oid": r["oid"],
            "timestamp": int(r["timestamp"].timestamp() * 1000),
            "triggerCondition": r["trigger_condition"],
            "isTrigger": r["is_trigger"],
            "triggerPx": repr(r["trigger_px"]),
            "children": [],
            "isPositionTpsl": r["is_position_tpsl"],
            "reduceOnly": r["reduce_only"],
            "orderType": r["order_type"],
            "origSz": repr(r["orig_sz"]),
            "tif": r["tif"],
            "cloid": r["cloid"],
        }
        sides = books.setdefault(r["coin"], [[], []])
        sides[0 if r["side"] == "B" else 1].append([r["address"], order])
    return [height, [[coin, sides] for coin, sides in books.items()]]


def read_l4_file(path: Path, coins: set[str], skips: Skips) -> tuple[int | None, pa.Table]:
    try:
        return parse_l4(orjson.loads(path.read_bytes()), coins, skips)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"{path.name} is not JSON: {e}") from e


def from_info_server(client: Any, folder: Path, coins: set[str], skips: Skips) -> tuple[int | None, pa.Table]:
    """Ask the local info server to write its latest L4 snapshot into `folder`, read it, remove it."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix="l4-", suffix=".json", delete=False) as f:
        out = Path(f.name)
    try:
        client.post(l4_request(out))
        if not out.stat().st_size:
            raise SourceUnavailable("the info server wrote no L4 snapshot (is it this machine's node?)")
        return read_l4_file(out, coins, skips)
    finally:
        out.unlink(missing_ok=True)


def from_hl_node(
    binary: Path, chain: str, snapshot: Path, folder: Path, coins: set[str], skips: Skips
) -> tuple[int | None, pa.Table]:
    """The snapshot's own order books, by the node's converter."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix="l4-", suffix=".json", delete=False) as f:
        out = Path(f.name)
    try:
        command = [
            str(binary),
            "--chain",
            chain,
            "compute-l4-snapshots",
            "--include-users",
            "--include-trigger-orders",
            str(snapshot),
            str(out),
        ]
        try:
            done = subprocess.run(command, capture_output=True, timeout=HL_NODE_SECONDS, check=False)  # noqa: S603 (the operator's binary, no shell)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SourceUnavailable(f"hl-node compute-l4-snapshots did not run: {e}") from e
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise SourceUnavailable(f"hl-node compute-l4-snapshots failed ({done.returncode}): {tail[0][:200]}")
        return read_l4_file(out, coins, skips)
    finally:
        out.unlink(missing_ok=True)
