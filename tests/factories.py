"""Plain factory functions for small, hand-checkable state updates."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from hyperscope.domain.state import FILLS, MARKETS, POSITIONS, WALLETS, StateUpdate

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP = 900_000


def addr(i: int) -> str:
    return f"0x{i:040x}"


def make_markets(coins: dict[str, float] | None = None) -> pa.Table:
    coins = coins or {"BTC": 60_000.0, "ETH": 2_500.0, "xyz:GOLD": 4_000.0}
    rows = [
        {
            "coin": c,
            "dex": c.split(":")[0] if ":" in c else "main",
            "mark_px": px,
            "oracle_px": px,
            "mid_px": px,
            "funding": 0.0000125,
            "premium": 0.0001,
            "open_interest": 0.0,
            "day_ntl_vlm": 1e6,
            "sz_decimals": 4,
            "max_leverage": 20,
        }
        for c, px in coins.items()
    ]
    return pa.Table.from_pylist(rows, schema=MARKETS)


def make_wallet(i: int, **overrides: Any) -> dict[str, Any]:
    row = {
        "address": addr(i),
        "perp_equity": 10_000.0,
        "spot_equity": 0.0,
        "staking_equity": 0.0,
        "vault_equity": 0.0,
        "balance": 10_000.0,
        "pnl": 0.0,
        "volume": 0.0,
    }
    row.update(overrides)
    return row


def make_position(i: int, coin: str, size: float, **overrides: Any) -> dict[str, Any]:
    row = {
        "address": addr(i),
        "coin": coin,
        "dex": coin.split(":")[0] if ":" in coin else "main",
        "size": size,
        "entry_px": 60_000.0 if coin == "BTC" else 2_500.0,
        "leverage_type": "cross",
        "leverage": 10.0,
        "liquidation_px": None,
        "margin_used": 100.0,
        "funding": 0.0,
        "open_time_hint": None,
    }
    row.update(overrides)
    return row


def make_fill(i: int, coin: str, side: str, sz: float, start: float, time: int, **overrides: Any) -> dict[str, Any]:
    row = {
        "address": addr(i),
        "coin": coin,
        "px": 60_000.0,
        "sz": sz,
        "side": side,
        "time": time,
        "start_position": start,
        "dir": "",
        "closed_pnl": 0.0,
        "fee": 0.0,
        "tid": 1,
        "liquidation": False,
    }
    row.update(overrides)
    return row


def make_state(
    height: int,
    positions: list[dict[str, Any]],
    wallets: list[dict[str, Any]] | None = None,
    fills: list[dict[str, Any]] | None = None,
    markets: pa.Table | None = None,
    time: int | None = None,
) -> StateUpdate:
    wallets = wallets if wallets is not None else [make_wallet(i) for i in range(1, 11)]
    return StateUpdate(
        height=height,
        time=time if time is not None else T0 + height * STEP,
        markets=markets if markets is not None else make_markets(),
        wallets=pa.Table.from_pylist(wallets, schema=WALLETS),
        positions=pa.Table.from_pylist(positions, schema=POSITIONS),
        fills=pa.Table.from_pylist(fills, schema=FILLS) if fills is not None else None,
        source="test",
    )
