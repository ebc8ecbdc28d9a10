"""Where a node keeps its files, and writing files in the node's formats.

Layout under a node's data folder (`~/hl/data`):

    periodic_abci_states/{YYYYMMDD}/{height}.rmp     state snapshots (MessagePack)
    node_fills_by_block/hourly/{YYYYMMDD}/{H}        fills, one block per line
    misc_events_by_block/hourly/{YYYYMMDD}/{H}       ledger updates, funding, staking, one block per line

plus what hyperscope itself records next to them, in the Info API's own response shapes:

    hyperscope/market/{height}.json                  perpDexs, metaAndAssetCtxs per dex, spotMetaAndAssetCtxs
    hyperscope/leaderboard.json                      a stats leaderboard file (all-time PnL and volume)

The writer is what `hyperscope simulate --write-node-dir` uses, and what the tests use to build fixtures of
the exact upstream shapes. Every file is written to a temporary name and renamed, as a node does, so a file
that exists is complete.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pyarrow as pa

from hyperscope.sources.hyperliquid.events import FILLS_DIR, MISC_DIR
from hyperscope.sources.hyperliquid.snapshot import LEV_CROSS, LEV_ISOLATED, Snapshot

SNAPSHOTS_DIR = "periodic_abci_states"
RECORDS_DIR = "hyperscope"


def day_of(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y%m%d")


def block_time(time_ms: int) -> str:
    """The node's `block_time` text: UTC, nanosecond digits."""
    moment = datetime.fromtimestamp(time_ms // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{time_ms % 1000:03d}000000"


def snapshot_path(root: Path, height: int, time_ms: int) -> Path:
    return root / SNAPSHOTS_DIR / day_of(time_ms) / f"{height}.rmp"


def market_record_path(root: Path, height: int) -> Path:
    return root / RECORDS_DIR / "market" / f"{height}.json"


def _publish(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_json(path: Path, value: Any) -> None:
    _publish(path, orjson.dumps(value))


# ------------------------------------------------------------------ snapshots


def _clearinghouse(snapshot: Snapshot, index: int) -> dict[str, Any]:
    house = snapshot.clearinghouses[index]
    address = _address_list(snapshot)
    meta = {
        "universe": [
            {"name": coin, "szDecimals": int(d), "marginTableId": int(t)}
            | ({"marginMode": "strictIsolated"} if strict else {})
            for coin, d, t, strict in zip(
                house.coins, house.sz_decimals, house.margin_table, house.strict_isolated, strict=True
            )
        ],
        "marginTableIdToMarginTable": [
            [
                table_id,
                {
                    "description": "",
                    "margin_tiers": [
                        {
                            "lower_bound": round(t.lower_bound * 1e6),
                            "max_leverage": t.max_leverage,
                            "maintenance_deduction": 0,
                        }
                        for t in tiers
                    ],
                },
            ]
            for table_id, tiers in sorted(house.margin_tables.items())
        ],
        "collateralToken": int(house.collateral_token),
    }
    oracle = {"pxs": [[{"px": int(px)}] if px > 0 else [] for px in house.oracle_raw]}
    held: dict[int, list[Any]] = {}
    offset = 0 if index == 0 else 100_000 + 10_000 * index  # HIP-3 positions are keyed by full asset id
    for k in range(house.pos_size.size):
        kind = house.pos_lev_kind[k]
        position: dict[str, Any] = {
            "s": int(house.pos_size[k]),
            "e": int(house.pos_cost[k]),
            "f": {"a": 0, "o": int(house.pos_funding[k]), "c": 0},
        }
        if kind == LEV_CROSS:
            position["l"] = {"C": int(house.pos_leverage[k])}
        elif kind == LEV_ISOLATED:
            position["l"] = {"I": {"l": int(house.pos_leverage[k]), "u": int(house.pos_iso_raw[k])}}
        held.setdefault(int(house.pos_account[k]), []).append([offset + int(house.pos_coin[k]), position])
    states = []
    n_coins = len(house.coins)
    for row, (user, cash) in enumerate(zip(house.user.tolist(), house.raw_usd.tolist(), strict=True)):
        state: dict[str, Any] = {"u": cash, "S": {"s": cash, "r": cash}}
        entries = list(held.get(row, []))
        if row % 7 == 3 and n_coins:  # as real files hold: leverage set on a coin not held (no s, no e)
            asset = offset + row % n_coins
            if all(a != asset for a, _ in entries):
                entries.append(
                    [asset, {"l": {"C": 15}, "M": int(house.margin_table[row % n_coins]), "f": {"a": -217821}}]
                )
        if entries:
            state["p"] = {"p": entries}
        if row % 11 == 5:
            state["x"] = {"y": [1, 2], "z": None}  # a field no reader knows
        states.append([address[user], state])
    return {
        "meta": meta,
        "user_states": {
            "users_with_positions": [address[house.user[r]] for r in sorted(held)],
            "user_to_state": states,
        },
        "oracle": oracle,
        "total_net_deposit": 0,
    }


def _address_list(snapshot: Snapshot) -> list[str]:
    a = snapshot.addresses
    return a.to_pylist() if isinstance(a, pa.Array) else list(a)


def encode_snapshot(snapshot: Snapshot, *, filler: Iterable[Any] = (), books_first: bool = False) -> bytes:
    """The snapshot in the shapes real files show (real-shapes.md): leverage-only position entries, fields
    and `locus` sections the reader does not use (`ust`, `blp`, `c_staking`, `spot_books`), and `filler` items
    as the order books in `exchange.perp_dexs`, after `locus` (before it with `books_first`; the reader must
    skip them wherever they sit)."""
    addresses = _address_list(snapshot)
    spot: dict[int, list[Any]] = {}
    for user, token, total in zip(
        snapshot.spot_user.tolist(), snapshot.spot_token.tolist(), snapshot.spot_total.tolist(), strict=True
    ):
        spot.setdefault(user, []).append([token, {"t": total, "h": 0}])
    vaults: dict[int, list[Any]] = {}
    for vault, user, fraction in zip(
        snapshot.vault.tolist(), snapshot.vault_user.tolist(), snapshot.vault_fraction.tolist(), strict=True
    ):
        vaults.setdefault(vault, []).append([addresses[user], {"o": {"f": fraction, "b": 0}}])
    some = addresses[::5]
    locus = {
        "ctx": {"height": snapshot.height, "time": block_time(snapshot.time_ms)},
        "cls": [_clearinghouse(snapshot, i) for i in range(len(snapshot.clearinghouses))],
        # sections real files carry that hyperscope does not read (yet): account modes, borrow/lend, staking
        "ust": [
            [addresses[u], "?udp"[c]] for u, c in zip(snapshot.mode_user.tolist(), snapshot.mode.tolist(), strict=True)
        ],
        "blp": {"pools": [[0, {"total_supplied": 10**12, "total_borrowed": 10**11}]], "user_states": []},
        "scl": {"user_states": [[addresses[u], {"b": b}] for u, b in spot.items()]},
        "c_staking": {
            "delegations": [[a, [["0x" + "ab" * 20, 10**8]]] for a in some[:50]],
            "user_states": [],
            "pending_withdrawals": [],
        },
        "vlt": [[addresses[v], {"user_states": s}] for v, s in vaults.items()],
        "spot_books": [[k, {"bids": [], "asks": []}] for k in range(3)],
    }
    if books_first:
        exchange: dict[str, Any] = {"perp_dexs": list(filler), "locus": locus}
    else:  # as public notes show real files: locus first, the books after it
        exchange = {"locus": locus, "perp_dexs": list(filler)}
    state = {"exchange": {**exchange, "partial_liquidation_cooldown": 30.0}}
    return msgpack.packb(state, use_bin_type=True)


def write_snapshot(root: Path, snapshot: Snapshot) -> Path:
    path = snapshot_path(root, snapshot.height, snapshot.time_ms)
    _publish(path, encode_snapshot(snapshot))
    return path


# ------------------------------------------------------------------ blocks


def _number(value: float) -> str:
    """A decimal string that reads back as exactly the same double."""
    return repr(float(value))


def fill_events(fills: pa.Table) -> list[list[Any]]:
    """FILLS rows as the node's `[user, fill]` events (API fill format)."""
    rows = fills.to_pydict()
    events = []
    times = fills.column("time").cast(pa.int64()).to_pylist()
    for i in range(fills.num_rows):
        fill = {
            "coin": rows["coin"][i],
            "px": _number(rows["px"][i]),
            "sz": _number(rows["sz"][i]),
            "side": rows["side"][i],
            "time": times[i],
            "startPosition": _number(rows["start_position"][i]),
            "dir": rows["dir"][i],
            "closedPnl": _number(rows["closed_pnl"][i]),
            "hash": "0x" + "0" * 64,
            "oid": 0,
            "crossed": True,
            "fee": _number(rows["fee"][i]),
            "tid": rows["tid"][i],
            "feeToken": "USDC",
            "twapId": None,
        }
        if rows["liquidation"][i]:
            fill["liquidation"] = {
                "liquidatedUser": rows["address"][i],
                "markPx": _number(rows["px"][i]),
                "method": "market",
            }
        events.append([rows["address"][i], fill])
    return events


VAULT = "0x" + "5a" * 20  # the vault the simulated vault flows go through


def _ledger(user: str, delta: dict[str, Any], time_ms: int) -> dict[str, Any]:
    return {
        "time": block_time(time_ms),
        "hash": "0x" + "0" * 64,
        "inner": {"LedgerUpdate": {"users": [user], "delta": delta}},
    }


def deposit_events(users: list[str], amounts: list[float], time_ms: int) -> list[dict[str, Any]]:
    """Ledger updates moving USDC into (positive) or out of (negative) perp accounts, spread over the ledger
    types real nodes write for such moves (so a replay books each kind), then some that move no perp cash."""

    def delta(k: int, user: str, amount: float) -> dict[str, Any]:
        usdc = _number(abs(amount))
        kinds: list[dict[str, Any]] = (
            [
                {"type": "deposit", "usdc": usdc},
                {"type": "accountClassTransfer", "usdc": usdc, "toPerp": True},
                {"type": "vaultDistribution", "vault": VAULT, "usdc": usdc},
                {"type": "perpDexClassTransfer", "dex": "", "token": "USDC", "amount": usdc, "toPerp": True},
                {"type": "vaultLeaderCommission", "vault": VAULT, "usdc": usdc},
            ]
            if amount >= 0
            else [
                {"type": "withdraw", "usdc": usdc, "nonce": 0, "fee": "0.0"},
                {"type": "accountClassTransfer", "usdc": usdc, "toPerp": False},
                {"type": "vaultDeposit", "vault": VAULT, "usdc": usdc},
                {"type": "vaultCreate", "vault": VAULT, "usdc": usdc, "fee": "0.0"},
            ]
        )
        return kinds[(k + int(user[2:10], 16)) % len(kinds)]  # by the address: every kind turns up

    events = [_ledger(u, delta(k, u, a), time_ms) for k, (u, a) in enumerate(zip(users, amounts, strict=True))]
    if users:
        u = users[0]
        events += [
            _ledger(
                u,
                {
                    "type": "spotTransfer",
                    "token": "PURR",
                    "amount": "1.0",
                    "usdcValue": "0.2",
                    "user": u,
                    "destination": VAULT,
                    "fee": "0.0",
                },
                time_ms,
            ),
            _ledger(u, {"type": "rewardsClaim", "amount": "0.5"}, time_ms),
            _ledger(
                u,
                {
                    "type": "send",
                    "user": u,
                    "destination": VAULT,
                    "sourceDex": "spot",
                    "destinationDex": "spot",
                    "token": "USDC",
                    "amount": "3.0",
                    "usdcValue": "3.0",
                },
                time_ms,
            ),
            {
                "time": block_time(time_ms),
                "hash": "0x" + "0" * 64,
                "inner": {"Delegation": {"user": u, "validator": VAULT, "amount": "1.0", "is_undelegate": False}},
            },
        ]
    return events


def staking_events(users: list[str], amounts: list[float], time_ms: int) -> list[dict[str, Any]]:
    """HYPE into (+) or out of (-) staking; a withdrawal as real nodes write it: queued, then finalized. The
    first user also stakes and withdraws the same amount, so a reader that counted both is seen at once."""

    def event(tag: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"time": block_time(time_ms), "hash": "0x" + "0" * 64, "inner": {tag: body}}

    out = []
    for u, a in zip(users, amounts, strict=True):
        if a >= 0:
            out.append(event("CDeposit", {"user": u, "amount": _number(a)}))
        else:
            out += [
                event("CWithdrawal", {"user": u, "amount": _number(-a), "is_finalized": False}),
                event("CWithdrawal", {"user": u, "amount": _number(-a), "is_finalized": True}),
            ]
    if users:
        out += [
            event("CDeposit", {"user": users[0], "amount": "2.5"}),
            event("CWithdrawal", {"user": users[0], "amount": "2.5", "is_finalized": False}),
            event("CWithdrawal", {"user": users[0], "amount": "2.5", "is_finalized": True}),
        ]
    return out


def append_block(root: Path, kind: str, number: int, time_ms: int, events: list[Any]) -> None:
    """Append one block line to the hourly file of `time_ms` (`kind` is FILLS_DIR or MISC_DIR)."""
    assert kind in (FILLS_DIR, MISC_DIR)
    moment = datetime.fromtimestamp(time_ms / 1000, UTC)
    path = root / kind / "hourly" / moment.strftime("%Y%m%d") / str(moment.hour)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {
        "local_time": block_time(time_ms),
        "block_time": block_time(time_ms),
        "block_number": number,
        "events": events,
    }
    with path.open("ab") as f:
        f.write(orjson.dumps(line) + b"\n")
