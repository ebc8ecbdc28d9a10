"""From a node snapshot, market data, fills and ledger events to one `StateUpdate`.

This is the one place where Hyperliquid's raw state becomes hyperscope's contract, whoever produced the
raw state: the node source and a replay decode it from files, and the simulator hands over its own state in
the same raw form, so both go through exactly this code (and a replay of simulator-written files serves
exactly what the simulator served).

What the snapshot does not hold is kept by a `WalletBook` that lives as long as the source:
- all-time perp PnL and volume: a wallet's values when first seen (from a stats leaderboard file, else 0),
  then PnL moves with its account value net of the USDC moved in or out (ledger events), and volume grows
  with its fills;
- HYPE staked (CDeposit / CWithdrawal events);
- when each open position opened (its last opening fill), for positions first seen without a fill in
  the update that sees them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hyperscope.domain.coins import MAIN_DEX
from hyperscope.domain.margin import Book, MarginTable, margins
from hyperscope.domain.state import MARKETS, POSITIONS, TS, WALLETS, StateUpdate
from hyperscope.sources.hyperliquid.collateral import pooled_collateral, token_price
from hyperscope.sources.hyperliquid.contexts import MarketContexts
from hyperscope.sources.hyperliquid.events import Flows
from hyperscope.sources.hyperliquid.snapshot import LEV_DEFAULT, LEV_ISOLATED, Clearinghouse, InvalidSnapshot, Snapshot

HYPE = "HYPE"


@dataclass
class Anchors:
    """All-time PnL and volume of wallets when first seen (a stats leaderboard file)."""

    pnl: dict[str, float] = field(default_factory=dict)
    volume: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_leaderboard(cls, data: Any) -> Anchors:
        """`{"leaderboardRows": [{"ethAddress", "windowPerformances": [["allTime", {"pnl", "vlm"}], ...]}]}`;
        windows are looked up by name, rows without an all-time window are skipped."""
        rows = data.get("leaderboardRows") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise InvalidSnapshot("leaderboard: no leaderboardRows list")
        anchors = cls()
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("ethAddress"), str):
                continue
            windows = dict(w for w in row.get("windowPerformances") or [] if isinstance(w, list) and len(w) == 2)
            whole = windows.get("allTime") or windows.get("perpAllTime")
            if not isinstance(whole, dict):
                continue
            address = row["ethAddress"].lower()
            try:
                anchors.pnl[address] = float(whole.get("pnl", 0))
                anchors.volume[address] = float(whole.get("vlm", 0))
            except (TypeError, ValueError):
                raise InvalidSnapshot(f"leaderboard: row {address} has a non-numeric pnl or vlm") from None
        return anchors


class WalletBook:
    """Per-wallet facts that outlive one snapshot (see the module docstring); bounded by the wallet count."""

    def __init__(self, anchors: Anchors | None = None) -> None:
        self.anchors = anchors or Anchors()
        self.address = pa.array([], pa.string())
        self.pnl_offset = np.zeros(0)
        self.volume = np.zeros(0)
        self.staked = np.zeros(0)
        self.open_keys = pa.array([], pa.string())  # "address|coin" of the last opening fill seen
        self.open_ms = np.zeros(0, np.int64)

    def _rows(self, addresses: pa.Array) -> np.ndarray:
        """Rows of `addresses` in the book, adding the unknown ones (with zero values).

        Three ways, cheapest first: the same addresses in the same order as the book (a simulated market,
        a stable node), a few addresses (fills, transfers: hash them, probe the book), else a hash lookup."""
        n = len(addresses)
        if n and n <= len(self.address) and addresses.equals(self.address.slice(0, n)):
            return np.arange(n, dtype=np.int64)
        if n * 8 < len(self.address):
            distinct = pc.unique(addresses)
            which = pc.index_in(addresses, value_set=distinct).to_numpy(zero_copy_only=False).astype(np.int64)
            found = pc.index_in(self.address, value_set=distinct).fill_null(-1).to_numpy(zero_copy_only=False)
            distinct_rows = np.full(len(distinct), -1, np.int64)
            hit = found >= 0
            distinct_rows[found[hit]] = np.nonzero(hit)[0]
            rows = distinct_rows[which]
        else:
            rows = pc.index_in(addresses, value_set=self.address).fill_null(-1).to_numpy(zero_copy_only=False)
        rows = rows.astype(np.int64)
        new = rows < 0
        if new.any():
            fresh = pc.unique(pc.filter(addresses, pa.array(new)))
            start = len(self.address)
            self.address = pa.concat_arrays([self.address, fresh.cast(pa.string())])
            grow = np.zeros(len(fresh))
            self.pnl_offset = np.concatenate([self.pnl_offset, np.full(len(fresh), np.nan)])  # NaN: not seen yet
            self.volume = np.concatenate([self.volume, grow])
            self.staked = np.concatenate([self.staked, grow])
            rows[new] = start + pc.index_in(pc.filter(addresses, pa.array(new)), value_set=fresh).to_numpy()
        return rows

    def stake(self, flows: Flows) -> None:
        if flows.staking_user:
            rows = self._rows(pa.array(flows.staking_user, pa.string()))
            np.add.at(self.staked, rows, np.array(flows.staking))

    def learn_opens(self, fills: pa.Table) -> None:
        """Remember the time of each position's last opening fill (from flat, or a flip)."""
        if not fills.num_rows:
            return
        start = fills.column("start_position").to_numpy()
        signed = np.where(pc.equal(fills.column("side"), "B").to_numpy(zero_copy_only=False), 1.0, -1.0)
        end = start + signed * fills.column("sz").to_numpy()
        opening = (end != 0) & ((start == 0) | (np.sign(start) != np.sign(end)))
        if not opening.any():
            return
        picked = fills.filter(pa.array(opening))
        keys = pc.binary_join_element_wise(pc.utf8_lower(picked.column("address")), picked.column("coin"), "|")
        times = picked.column("time").cast(pa.int64()).to_numpy()
        keys = pa.concat_arrays([self.open_keys, keys.combine_chunks()])
        times = np.concatenate([self.open_ms, times])
        order = np.argsort(times, kind="stable")  # the latest per key wins
        table = pa.table({"k": keys.take(pa.array(order)), "t": times[order]})
        last = table.group_by("k", use_threads=False).aggregate([("t", "last")])
        self.open_keys, self.open_ms = last.column("k").combine_chunks(), last.column("t_last").to_numpy()

    def hints(self, keys: pa.Array) -> pa.Array:
        """Open time (ms) per position key, null where no opening fill was seen; forgets closed keys."""
        at = pc.index_in(keys, value_set=self.open_keys)
        known = at.is_valid().to_numpy(zero_copy_only=False)
        times = np.where(
            known, self.open_ms[at.fill_null(0).to_numpy(zero_copy_only=False)] if len(self.open_ms) else 0, 0
        )
        if len(self.open_keys) > 2 * len(keys) + 10_000:  # forget closed positions now and then (bounded)
            keep = pc.is_in(self.open_keys, value_set=keys).to_numpy(zero_copy_only=False)
            self.open_keys, self.open_ms = self.open_keys.filter(pa.array(keep)), self.open_ms[keep]
        return pa.array(times, pa.int64(), mask=~known).cast(TS)

    def wallet_columns(
        self, addresses: pa.Array, perp_equity: np.ndarray, fills: pa.Table | None, flows: Flows
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All-time PnL, volume and HYPE staked per wallet of this update (updates the book)."""
        rows = self._rows(addresses)
        seen = np.isfinite(self.pnl_offset[rows])
        if flows.usdc_user:  # money moved in or out of wallets seen before: not PnL
            flow_rows = self._rows(pa.array(flows.usdc_user, pa.string()))
            moved = np.zeros(len(self.address))
            np.add.at(moved, flow_rows, np.array(flows.usdc))
            self.pnl_offset -= np.nan_to_num(moved * np.isfinite(self.pnl_offset))
        if fills is not None and fills.num_rows:
            fill_rows = self._rows(pc.utf8_lower(fills.column("address")).combine_chunks())
            notional = fills.column("px").to_numpy() * fills.column("sz").to_numpy()
            traded = np.bincount(fill_rows, weights=notional, minlength=len(self.address))
            self.volume += np.where(np.isfinite(self.pnl_offset), traded, 0.0)
        if not seen.all():  # first sight: anchored to the leaderboard's all-time values, else 0
            new_rows = rows[~seen]
            new_addresses = addresses.filter(pa.array(~seen)).to_pylist()
            pnl0 = np.array([self.anchors.pnl.get(a, 0.0) for a in new_addresses])
            self.volume[new_rows] = np.array([self.anchors.volume.get(a, 0.0) for a in new_addresses])
            self.pnl_offset[new_rows] = pnl0 - perp_equity[~seen]
        return perp_equity + self.pnl_offset[rows], self.volume[rows], self.staked[rows]

    # ------------------------------------------------------------ persistence

    def save(self, path: Path, height: int) -> None:
        """Write the book as of state update `height` (atomically)."""
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp,
            height=np.array(height),
            address=np.array(self.address.to_pylist(), dtype=str),
            pnl_offset=self.pnl_offset,
            volume=self.volume,
            staked=self.staked,
            open_keys=np.array(self.open_keys.to_pylist(), dtype=str),
            open_ms=self.open_ms,
        )
        tmp.replace(path)

    def load(self, path: Path) -> int:
        """Read a book saved by `save`; returns the height it is as of."""
        with np.load(path, allow_pickle=False) as data:
            height = int(data["height"])
            self.address = pa.array(data["address"].tolist(), pa.string())
            self.pnl_offset, self.volume, self.staked = data["pnl_offset"], data["volume"], data["staked"]
            self.open_keys = pa.array(data["open_keys"].tolist(), pa.string())
            self.open_ms = data["open_ms"]
        return height


# ------------------------------------------------------------------ the state update


def _markets(snapshot: Snapshot, contexts: MarketContexts) -> tuple[pa.Table, list[np.ndarray]]:
    """The markets table, and per clearinghouse each coin's row in it (-1: no price, left out)."""
    rows: dict[str, list[Any]] = {f.name: [] for f in MARKETS}
    where: list[np.ndarray] = []
    for house in snapshot.clearinghouses:
        dex = house.dex or MAIN_DEX
        oracle = house.oracle_px()
        positions = np.zeros(len(house.coins))
        long = house.pos_size > 0
        np.add.at(positions, house.pos_coin[long], house.pos_size[long].astype(np.float64))
        open_interest = positions / 10.0**house.sz_decimals
        at = np.full(len(house.coins), -1, np.int64)
        for j, coin in enumerate(house.coins):
            ctx = contexts.coins.get(coin)
            if ctx is None and not np.isfinite(oracle[j]):
                continue
            at[j] = len(rows["coin"])
            table = house.margin_tables[int(house.margin_table[j])]
            rows["coin"].append(coin)
            rows["dex"].append(dex)
            rows["sz_decimals"].append(int(house.sz_decimals[j]))
            rows["max_leverage"].append(int(table[0].max_leverage))
            if ctx is None:  # the snapshot's oracle price stands in for the mark
                rows["mark_px"].append(float(oracle[j]))
                rows["oracle_px"].append(float(oracle[j]))
                rows["mid_px"].append(None)
                rows["funding"].append(0.0)
                rows["premium"].append(None)
                rows["open_interest"].append(float(open_interest[j]))
                rows["day_ntl_vlm"].append(0.0)
            else:
                rows["mark_px"].append(ctx.mark_px)
                rows["oracle_px"].append(ctx.oracle_px if ctx.oracle_px is not None else float(oracle[j]))
                rows["mid_px"].append(ctx.mid_px)
                rows["funding"].append(ctx.funding)
                rows["premium"].append(ctx.premium)
                rows["open_interest"].append(
                    ctx.open_interest if ctx.open_interest is not None else float(open_interest[j])
                )
                rows["day_ntl_vlm"].append(ctx.day_ntl_vlm)
        where.append(at)
    if not rows["coin"]:
        raise InvalidSnapshot(f"snapshot {snapshot.height}: no coin has a price (no oracle prices, no market data)")
    return pa.table(rows, schema=MARKETS), where


def build_update(
    snapshot: Snapshot,
    contexts: MarketContexts,
    book: WalletBook,
    *,
    fills: pa.Table | None,
    flows: Flows,
    orders: pa.Table | None = None,
    source: str = "node",
) -> StateUpdate:
    """One state update (see the module docstring). Raises InvalidSnapshot when the pieces do not fit."""
    markets, market_row = _markets(snapshot, contexts)
    if fills is not None:
        book.learn_opens(fills)
    mark = markets.column("mark_px").to_numpy()
    addresses = (
        snapshot.addresses if isinstance(snapshot.addresses, pa.Array) else pa.array(snapshot.addresses, pa.string())
    )

    parts: dict[str, list[np.ndarray]] = {
        k: []
        for k in ("user", "market", "size", "entry", "leverage", "isolated", "iso_raw", "table", "account", "funding")
    }
    tables: dict[int, MarginTable] = {}
    account_user, account_raw, account_dex, account_price = [], [], [], []
    n_accounts = 0
    for house, rows in zip(snapshot.clearinghouses, market_row, strict=True):
        # a position that cannot be valued (its coin has no price) or has no usable leverage is skipped and
        # counted: one odd position never costs the whole market
        unpriced = rows[house.pos_coin] < 0
        no_leverage = (house.pos_lev_kind != LEV_DEFAULT) & (house.pos_leverage <= 0)
        for mask, kind_of in (
            (unpriced, "positions on a coin without a price"),
            (no_leverage & ~unpriced, "positions whose leverage is not positive"),
        ):
            if mask.any():
                first = house.coins[int(house.pos_coin[np.argmax(mask)])]
                snapshot.skipped.add(kind_of, f"cls[{house.index}] {first}", int(mask.sum()))
        if unpriced.any() or no_leverage.any():
            house.keep_positions(~(unpriced | no_leverage))
        n = house.pos_size.size
        coin = house.pos_coin
        market = rows[coin]
        scale = 10.0 ** house.sz_decimals[coin]
        size = house.pos_size / scale
        table_ids = house.margin_table[coin] + 1_000_000 * house.index  # tables are per dex
        for table_id, tiers in house.margin_tables.items():
            tables[table_id + 1_000_000 * house.index] = MarginTable(
                np.array([t.lower_bound for t in tiers]), np.array([float(t.max_leverage) for t in tiers])
            )
        max_lev = (
            np.array([float(house.margin_tables[int(t)][0].max_leverage) for t in house.margin_table])[coin]
            if n
            else np.zeros(0)
        )
        kind = house.pos_lev_kind
        default_isolated = (house.index > 0) | house.strict_isolated[coin]
        isolated = (kind == LEV_ISOLATED) | ((kind == LEV_DEFAULT) & default_isolated)
        # no leverage set: as the public parsers read it, min(max leverage, 20) cross on the main dex, the
        # entry's `M` (else the max) on a HIP-3 dex (docs/decisions.md)
        set_lev = house.pos_leverage.astype(np.float64)
        default = np.minimum(max_lev, 20.0) if house.index == 0 else np.where(set_lev > 0, set_lev, max_lev)
        leverage = np.where(kind == LEV_DEFAULT, default, set_lev)
        entry = np.abs(house.pos_cost) / 1e6 / np.abs(size) if n else np.zeros(0)
        # an isolated position without its margin in the file: the initial margin at entry is assumed posted
        assumed = np.abs(size) * entry / np.maximum(leverage, 1.0) - size * entry
        iso_raw = np.where(kind == LEV_ISOLATED, house.pos_iso_raw / 1e6, np.where(isolated, assumed, 0.0))
        parts["user"].append(house.user[house.pos_account])
        parts["market"].append(market)
        parts["size"].append(size)
        parts["entry"].append(entry)
        parts["leverage"].append(leverage)
        parts["isolated"].append(isolated)
        parts["iso_raw"].append(iso_raw)
        parts["table"].append(table_ids)
        parts["account"].append(house.pos_account + n_accounts)
        parts["funding"].append(-house.pos_funding / 1e6)
        account_user.append(house.user)
        account_raw.append(house.raw_usd / 1e6)
        account_dex.append(np.full(house.user.size, house.index, np.int64))
        account_price.append(np.full(house.user.size, _collateral_price(snapshot, contexts, house)))
        n_accounts += house.user.size
    col = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    user = col["user"].astype(np.int64)
    market = col["market"].astype(np.int64)
    raw_usd = np.concatenate(account_raw) if account_raw else np.zeros(0)
    users_of = np.concatenate(account_user) if account_user else np.zeros(0, np.int64)
    price = np.concatenate(account_price) if account_price else np.zeros(0)
    account = col["account"].astype(np.int64)
    isolated = col["isolated"].astype(bool)
    cross = np.bincount(
        account, weights=np.where(isolated, 0.0, np.abs(col["size"]) * mark[market]), minlength=raw_usd.size
    )
    pooled = pooled_collateral(
        snapshot,
        contexts,
        users_of,
        np.concatenate(account_dex) if account_dex else np.zeros(0, np.int64),
        price,
        cross,
        len(addresses),
    )
    snapshot.pooled_wallets = pooled.wallets
    raw_usd = raw_usd + pooled.cash
    m = margins(
        Book(
            account=account,
            size=col["size"],
            entry=col["entry"],
            mark=mark[market],
            leverage=col["leverage"],
            isolated=isolated,
            isolated_raw_usd=col["iso_raw"],
            table=col["table"].astype(np.int64),
            raw_usd=raw_usd,
            credit=pooled.credit if pooled.wallets else None,
        ),
        tables,
    )
    coins = markets.column("coin").take(pa.array(market))
    keys = pc.binary_join_element_wise(addresses.take(pa.array(user)), coins, "|")
    positions = pa.table(
        {
            "address": addresses.take(pa.array(user)),
            "coin": coins,
            "dex": markets.column("dex").take(pa.array(market)),
            "size": col["size"],
            "entry_px": col["entry"],
            "leverage_type": pa.array(np.where(col["isolated"].astype(bool), "isolated", "cross")),
            "leverage": col["leverage"],
            "liquidation_px": pa.array(m.liquidation_px, from_pandas=True),
            "margin_used": m.margin_used,
            "funding": col["funding"],
            "open_time_hint": book.hints(keys),
        },
        schema=POSITIONS,
    )

    # a dex settling in another token than USDC: its account values at that token's price
    cash = (raw_usd + np.bincount(account, weights=col["iso_raw"], minlength=raw_usd.size)) * price
    wallets = _wallets(
        snapshot, contexts, book, addresses, m.account_value * price, users_of, cash, fills, flows, pooled.moved_usd
    )
    # positions were skipped (or users who may have held some): a coin's long and short need not match
    partial = any(kind in snapshot.skipped.counts for kind in POSITION_SKIPS)
    return StateUpdate(
        height=snapshot.height,
        time=snapshot.time_ms,
        markets=markets,
        wallets=wallets,
        positions=positions,
        orders=orders,
        fills=fills,
        source=source,
        partial=partial,
        market_data=contexts.origin,
    )


POSITION_SKIPS = (
    "position entries that could not be read",
    "user states that could not be read",
    "positions on an asset meta does not list",
    "positions on a coin without a price",
    "positions whose leverage is not positive",
)


def _collateral_price(snapshot: Snapshot, contexts: MarketContexts, house: Clearinghouse) -> float:
    """The USD price of the token a dex settles in (USDC: 1); one without a price counts at 1, counted."""
    price = token_price(contexts, house.collateral_token)
    if price is None or not np.isfinite(price) or price <= 0:
        snapshot.skipped.add(
            "dexes settling in a token without a price (valued at 1)",
            f"cls[{house.index}] collateral token {house.collateral_token}",
        )
        return 1.0
    return float(price)


def _wallets(
    snapshot: Snapshot,
    contexts: MarketContexts,
    book: WalletBook,
    addresses: pa.Array,
    account_value: np.ndarray,
    users: np.ndarray,
    cash: np.ndarray,
    fills: pa.Table | None,
    flows: Flows,
    moved: np.ndarray,
) -> pa.Table:
    """Per wallet: perp equity (account values over dexes), balance (cross cash plus isolated raw USD),
    spot at token prices, vault shares at the vault's account value, staking at the HYPE price. `moved` is
    the spot value that backs perps (collateral.py): perp equity, not spot, and never PnL."""
    n = len(addresses)
    perp = np.bincount(users, weights=account_value, minlength=n)
    balance = np.bincount(users, weights=cash, minlength=n)
    spot: np.ndarray = np.zeros(n)
    if snapshot.spot_user.size:
        price = np.array([contexts.token_prices.get(int(t), 0.0) for t in np.unique(snapshot.spot_token)])
        decimals = np.array([contexts.token_decimals.get(int(t), 8) for t in np.unique(snapshot.spot_token)])
        which = np.searchsorted(np.unique(snapshot.spot_token), snapshot.spot_token)
        spot = np.bincount(
            snapshot.spot_user, weights=snapshot.spot_total / 10.0 ** decimals[which] * price[which], minlength=n
        )
    spot = spot - moved
    vault: np.ndarray = np.zeros(n)
    if snapshot.vault.size:
        vault = np.bincount(
            snapshot.vault_user, weights=snapshot.vault_fraction * np.maximum(perp[snapshot.vault], 0), minlength=n
        )
    book.stake(flows)
    # PnL follows the wallet's own perp accounts: spot value that backs them is neither PnL nor a flow
    pnl, volume, staked = book.wallet_columns(addresses, perp - moved, fills, flows)
    hype = contexts.token_prices.get(contexts.token_index.get(HYPE, -1), 0.0)
    return pa.table(
        {
            "address": addresses,
            "perp_equity": perp,
            "spot_equity": spot,
            "staking_equity": staked * hype,
            "vault_equity": vault,
            "balance": balance,
            "pnl": pnl,
            "volume": volume,
        },
        schema=WALLETS,
    )
