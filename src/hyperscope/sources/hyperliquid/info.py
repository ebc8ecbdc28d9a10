"""The Info API (`POST /info`): one client for a node's local server and the public API, and `--source info`.

The client is info_client.py; a 4xx for one wallet skips that wallet.

`--source info` builds each state update from a sweep of per-wallet requests, largest wallets first:
`clearinghouseState` per (wallet, dex), `spotClearinghouseState`, and against a local server also
`userVaultEquities` and `delegatorSummary`. The values the node computes itself (liquidation price, margin
used, funding) are taken as they are. Which wallets:
- next to a node (`--node-data`): every `users_with_positions` of its newest snapshot, plus a watch list;
- the public API: the watch list only (a text file of addresses, or a stats leaderboard file). Such an update
  covers only the watched wallets, so a coin's long and short sizes need not match; the update says so
  (`partial`), and so do /health and the API docs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa

from hyperscope.domain.coins import MAIN_DEX, dex_of, market_name
from hyperscope.domain.state import MARKETS, POSITIONS, TS, WALLETS, StateUpdate
from hyperscope.domain.timefmt import now_ms
from hyperscope.errors import ConfigError
from hyperscope.sources.base import Backlog, Ledger, Progress, claim
from hyperscope.sources.hyperliquid.build import Anchors, WalletBook
from hyperscope.sources.hyperliquid.contexts import (
    MarketContexts,
    from_recording,
    perp_dex_names,
)
from hyperscope.sources.hyperliquid.events import Flows
from hyperscope.sources.hyperliquid.info_client import (
    PUBLIC_API,
    InfoClient,
    InfoRejected,
    fetch_market,
)
from hyperscope.sources.hyperliquid.snapshot import InvalidSnapshot, users_with_positions

if TYPE_CHECKING:
    from hyperscope.settings import Settings

log = logging.getLogger("hyperscope.sources.hyperliquid")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request would drown the log


def read_watch_list(path: Path) -> list[str]:
    """A text file with one 0x address per line (# comments allowed), or a stats leaderboard JSON file,
    largest account value first."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"--watch-list: cannot read {path}: {e.strerror}") from e
    if raw.lstrip().startswith(b"{"):
        rows = orjson.loads(raw).get("leaderboardRows") or []
        rows = sorted(rows, key=lambda r: -float(r.get("accountValue") or 0))
        addresses = [r.get("ethAddress", "") for r in rows]
    else:
        addresses = [line.split("#")[0].strip() for line in raw.decode(errors="replace").splitlines()]
    found = [a.lower() for a in addresses if a]
    bad = [a for a in found if len(a) != 42 or not a.startswith("0x")]
    if bad:
        raise ConfigError(f"--watch-list: {bad[0]!r} in {path} is not a 0x address")
    return list(dict.fromkeys(found))


def recent_traders(node: Path) -> list[str]:
    """Wallets in the node's newest fills file (they may hold positions opened since the last snapshot)."""
    from hyperscope.sources.hyperliquid.events import FILLS_DIR, hourly_files

    files = hourly_files(node / FILLS_DIR)
    if not files:
        return []
    users: dict[str, None] = {}
    for line in files[-1].read_bytes().splitlines():
        try:
            block = orjson.loads(line)
            users.update((str(event[0]).lower(), None) for event in block["events"])
        except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
            continue  # a line being written, or not a block: the next sweep reads it
    return [u for u in users if len(u) == 42 and u.startswith("0x")]


def _f(value: Any) -> float:
    return float(value) if value not in (None, "") else 0.0


@dataclass
class Sweep:
    """The rows of one sweep, filled wallet by wallet."""

    positions: dict[str, list[Any]] = field(default_factory=lambda: {f.name: [] for f in POSITIONS})
    wallets: dict[str, list[Any]] = field(default_factory=lambda: {f.name: [] for f in WALLETS})
    skipped: int = 0


class InfoSource:
    """`--source info` (see the module docstring)."""

    kind = "info"

    def __init__(
        self,
        client: InfoClient,
        addresses: Callable[[], list[str]],
        *,
        local: bool,
        market: InfoClient | None = None,
        interval_s: float = 60.0,
        anchors: Anchors | None = None,
    ) -> None:
        self.client = client
        self.market = market or client
        self.addresses = addresses
        self.local = local
        self.interval_s = interval_s
        self.identity = f"Hyperliquid info server {client.url}"
        self.book = WalletBook(anchors)
        self.last_height = 0
        self.progress: Progress | None = None
        self.covered = 0
        self.skipped = 0
        self._next_due = time.monotonic()
        self._equity: dict[str, float] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> InfoSource:
        local = not settings.info_url.startswith(PUBLIC_API.rsplit("/", 1)[0])
        watch = read_watch_list(settings.watch_list) if settings.watch_list else []
        node = settings.node_data
        if not local and not watch:
            raise ConfigError("--source info with the public API needs --watch-list (it cannot list wallets)")

        def addresses() -> list[str]:
            found = list(watch)
            if node is not None:
                from hyperscope.sources.hyperliquid.node import snapshot_files

                files = snapshot_files(node)
                if files:
                    found += users_with_positions(files[max(files)])
                found += recent_traders(node)
            return list(dict.fromkeys(found))

        client = InfoClient(settings.info_url, settings.info_weight_per_minute if not local else 1_000_000)
        market = (
            InfoClient(settings.market_info_url, settings.info_weight_per_minute, timeout=5.0, retries=1)
            if (local and settings.market_info_url)
            else None
        )
        anchors = (
            Anchors.from_leaderboard(orjson.loads(settings.leaderboard.read_bytes())) if settings.leaderboard else None
        )
        return cls(
            client, addresses, local=local, market=market, interval_s=settings.live_interval_seconds, anchors=anchors
        )

    def attach(self, store: Ledger, progress: Progress | None = None) -> int:
        claim(store, self.identity, "the data folder", "use the same --info-url")
        latest = store.latest()
        self.last_height = latest.height if latest is not None else 0
        return 0

    def backlog(self) -> Backlog:
        return Backlog(1, [self.sweep])

    def next_update(self, stop: threading.Event) -> StateUpdate | None:
        if stop.wait(max(0.0, self._next_due - time.monotonic())):
            return None
        return self.sweep(stop)

    def stored(self, height: int) -> None:
        self.last_height = height

    def save(self) -> None:
        pass  # nothing to resume: each sweep is a whole new picture

    def health(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "server": self.client.url,
            "coverage": "wallets with positions on the node"
            if self.local
            else f"watched wallets only ({self.covered}); long and short need not match",
            "wallets_skipped": self.skipped,
            "market_data": f"Info API {self.market.url}",
        }

    # ------------------------------------------------------------ a sweep

    def sweep(self, stop: threading.Event | None = None) -> StateUpdate:
        started = time.monotonic()
        record = fetch_market(self.market)
        contexts = from_recording(record)
        dexes = [d for d in perp_dex_names(record["perpDexs"])]
        addresses = sorted(self.addresses(), key=lambda a: -self._equity.get(a, 0.0))  # largest wallets first
        rows = Sweep()
        hype = contexts.token_prices.get(contexts.token_index.get("HYPE", -1), 0.0)
        for i, address in enumerate(addresses):
            if stop is not None and stop.is_set():
                break
            try:
                self._wallet(rows, address, dexes, contexts, hype)
            except InfoRejected as e:
                rows.skipped += 1
                log.warning("skipped %s: %s", address, e)
            if self.progress is not None:
                self.progress(i + 1, len(addresses))
        self.covered, self.skipped = len(rows.wallets["address"]), rows.skipped
        self._next_due = started + self.interval_s
        return self._update(rows, contexts)

    def _wallet(self, rows: Sweep, address: str, dexes: list[str], contexts: MarketContexts, hype: float) -> None:
        perp = balance = 0.0
        for dex in dexes:
            state = self.client.post({"type": "clearinghouseState", "user": address, "dex": dex})
            try:
                summary = state["marginSummary"]
                perp += _f(summary["accountValue"])
                balance += _f(summary["totalRawUsd"])
                for item in state.get("assetPositions") or []:
                    self._position(rows, address, dex, item["position"])
            except (KeyError, TypeError, ValueError) as e:
                raise InvalidSnapshot(f"clearinghouseState of {address} (dex {dex!r}) is malformed: {e}") from e
        spot_state = self.client.post({"type": "spotClearinghouseState", "user": address})
        spot = sum(
            _f(b.get("total")) * contexts.token_prices.get(int(b.get("token", -1)), 0.0)
            for b in spot_state.get("balances") or []
        )
        vault = staking = 0.0
        if self.local:
            vault = sum(_f(v.get("equity")) for v in self.client.post({"type": "userVaultEquities", "user": address}))
            staked = self.client.post({"type": "delegatorSummary", "user": address})
            staking = (
                _f(staked.get("delegated")) + _f(staked.get("undelegated")) + _f(staked.get("totalPendingWithdrawal"))
            ) * hype
        self._equity[address] = perp
        w = rows.wallets
        for name, value in (
            ("address", address),
            ("perp_equity", perp),
            ("spot_equity", spot),
            ("staking_equity", staking),
            ("vault_equity", vault),
            ("balance", balance),
        ):
            w[name].append(value)

    @staticmethod
    def _position(rows: Sweep, address: str, dex: str, p: dict[str, Any]) -> None:
        size = _f(p["szi"])
        if size == 0:
            return
        lev = p.get("leverage") or {}
        liq = p.get("liquidationPx")
        r = rows.positions
        r["address"].append(address)
        r["coin"].append(market_name(dex, p["coin"]))
        r["dex"].append(dex or MAIN_DEX)
        r["size"].append(size)
        r["entry_px"].append(_f(p["entryPx"]))
        r["leverage_type"].append("isolated" if lev.get("type") == "isolated" else "cross")
        r["leverage"].append(float(lev.get("value", 1)))
        r["liquidation_px"].append(float(liq) if liq not in (None, "") else None)
        r["margin_used"].append(_f(p.get("marginUsed")))
        r["funding"].append(-_f((p.get("cumFunding") or {}).get("sinceOpen")))
        r["open_time_hint"].append(None)

    def _update(self, rows: Sweep, contexts: MarketContexts) -> StateUpdate:
        time_ms = now_ms()
        ctx = list(contexts.coins.values())
        markets = pa.table(
            {
                "coin": list(contexts.coins),
                "dex": [dex_of(c) for c in contexts.coins],
                "mark_px": [c.mark_px for c in ctx],
                "oracle_px": [c.oracle_px if c.oracle_px is not None else c.mark_px for c in ctx],
                "mid_px": [c.mid_px for c in ctx],
                "funding": [c.funding for c in ctx],
                "premium": [c.premium for c in ctx],
                "open_interest": [c.open_interest or 0.0 for c in ctx],
                "day_ntl_vlm": [c.day_ntl_vlm for c in ctx],
                "sz_decimals": [c.sz_decimals if c.sz_decimals is not None else 6 for c in ctx],
                "max_leverage": [c.max_leverage or 1 for c in ctx],
            },
            schema=MARKETS,
        )
        w = rows.wallets
        addresses = pa.array(w["address"], pa.string())
        perp = np.array(w["perp_equity"], np.float64)
        pnl, volume, _ = self.book.wallet_columns(addresses, perp, None, Flows())
        wallets = pa.table(
            {
                **{
                    k: w[k]
                    for k in ("address", "perp_equity", "spot_equity", "staking_equity", "vault_equity", "balance")
                },
                "pnl": pnl,
                "volume": volume,
            },
            schema=WALLETS,
        )
        positions = pa.table(
            {k: v for k, v in rows.positions.items() if k != "open_time_hint"}
            | {"open_time_hint": pa.nulls(len(rows.positions["address"]), TS)},
            schema=POSITIONS,
        )
        self.last_height = max(self.last_height + 1, time_ms // 1000)
        return StateUpdate(
            height=self.last_height,
            time=time_ms,
            markets=markets,
            wallets=wallets,
            positions=positions,
            source="info",
            partial=not self.local,
        )
