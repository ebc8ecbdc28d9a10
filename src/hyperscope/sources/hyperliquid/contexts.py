"""Market data of a moment: mark, mid, funding and premium per perp coin, and spot token prices.

The node's snapshot holds oracle prices only. Marks, mids, funding and premiums come from the Info API's
`metaAndAssetCtxs` (one call per dex: `[meta, assetCtxs]`, index-aligned), spot prices from
`spotMetaAndAssetCtxs`, and the dex list from `perpDexs` (`[null, {"name": ...}, ...]`, in either casing).
These responses are parsed here, whoever fetched them: the live node source asks the public API at each
snapshot and records what it got next to its checkpoint (`market/{height}.json`), and a replay reads such
recordings, so that a replay serves the same numbers as the run it replays.

Every number in these responses is a decimal string; anything malformed raises InvalidSnapshot naming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hyperscope.domain.coins import market_name
from hyperscope.sources.hyperliquid.snapshot import InvalidSnapshot

USDC_TOKEN = 0
USDC_DECIMALS = 8


@dataclass(frozen=True)
class CoinContext:
    mark_px: float
    oracle_px: float | None
    mid_px: float | None
    funding: float  # hourly
    premium: float | None
    open_interest: float | None
    day_ntl_vlm: float
    max_leverage: int | None
    sz_decimals: int | None = None


@dataclass
class MarketContexts:
    """What the Info API said at one moment; `origin` says where it came from, for /health."""

    coins: dict[str, CoinContext] = field(default_factory=dict)
    token_prices: dict[int, float] = field(default_factory=lambda: {USDC_TOKEN: 1.0})
    token_decimals: dict[int, int] = field(default_factory=lambda: {USDC_TOKEN: USDC_DECIMALS})
    token_index: dict[str, int] = field(default_factory=lambda: {"USDC": USDC_TOKEN})
    origin: str = "oracle prices only (no market data)"

    @property
    def empty(self) -> bool:
        return not self.coins


def _number(value: Any, what: str, optional: bool = False) -> float | None:
    if value is None or value == "" or value == "null":
        if optional:
            return None
        raise InvalidSnapshot(f"market data: {what} is missing")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidSnapshot(f"market data: {what} is {value!r:.40}, not a number") from None
    if not math.isfinite(number):
        raise InvalidSnapshot(f"market data: {what} is {value!r:.40}, not a finite number")
    return number


def perp_dex_names(response: Any) -> list[str]:
    """`perpDexs` -> ["", "xyz", ...]: null is the main dex; entries carry `name` (both casings accepted)."""
    if not isinstance(response, list):
        raise InvalidSnapshot("market data: perpDexs is not a list")
    names = []
    for i, entry in enumerate(response):
        if entry is None:
            names.append("")
        elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
            names.append(entry["name"])
        else:
            raise InvalidSnapshot(f"market data: perpDexs[{i}] has no name")
    return names


def add_perp_contexts(into: MarketContexts, dex: str, response: Any) -> None:
    """`metaAndAssetCtxs` for one dex: `[meta, ctxs]` with ctxs[i] for meta.universe[i]."""
    where = f"metaAndAssetCtxs(dex={dex!r})"
    if not (isinstance(response, list) and len(response) == 2 and isinstance(response[0], dict)):
        raise InvalidSnapshot(f"market data: {where} is not [meta, assetCtxs]")
    meta, ctxs = response
    universe = meta.get("universe")
    if not isinstance(universe, list) or not isinstance(ctxs, list) or len(universe) != len(ctxs):
        raise InvalidSnapshot(f"market data: {where}: universe and assetCtxs do not align")
    for i, (asset, ctx) in enumerate(zip(universe, ctxs, strict=True)):
        if not isinstance(asset, dict) or not isinstance(ctx, dict) or not isinstance(asset.get("name"), str):
            raise InvalidSnapshot(f"market data: {where}[{i}] is malformed")
        name = asset["name"]
        coin = market_name(dex, name)
        w = f"{where} {coin}"
        max_leverage = asset.get("maxLeverage")
        into.coins[coin] = CoinContext(
            mark_px=_number(ctx.get("markPx"), f"{w} markPx"),  # type: ignore[arg-type]
            oracle_px=_number(ctx.get("oraclePx"), f"{w} oraclePx", optional=True),
            mid_px=_number(ctx.get("midPx"), f"{w} midPx", optional=True),
            funding=_number(ctx.get("funding"), f"{w} funding"),  # type: ignore[arg-type]
            premium=_number(ctx.get("premium"), f"{w} premium", optional=True),
            open_interest=_number(ctx.get("openInterest"), f"{w} openInterest", optional=True),
            day_ntl_vlm=_number(ctx.get("dayNtlVlm"), f"{w} dayNtlVlm", optional=True) or 0.0,
            max_leverage=int(max_leverage) if isinstance(max_leverage, int) else None,
            sz_decimals=asset["szDecimals"] if isinstance(asset.get("szDecimals"), int) else None,
        )


def add_spot_contexts(into: MarketContexts, response: Any) -> None:
    """`spotMetaAndAssetCtxs`: token decimals, and each token's USDC price from its pair's mid (else mark)."""
    if not (isinstance(response, list) and len(response) == 2 and isinstance(response[0], dict)):
        raise InvalidSnapshot("market data: spotMetaAndAssetCtxs is not [spotMeta, assetCtxs]")
    meta, ctxs = response
    for token in meta.get("tokens") or []:
        if isinstance(token, dict) and isinstance(token.get("index"), int):
            into.token_decimals[token["index"]] = int(token.get("weiDecimals", USDC_DECIMALS))
            if isinstance(token.get("name"), str):
                into.token_index[token["name"]] = token["index"]
    by_coin = {c.get("coin"): c for c in ctxs or [] if isinstance(c, dict)}
    for pair in meta.get("universe") or []:
        if not isinstance(pair, dict):
            continue
        tokens = pair.get("tokens")
        if not (isinstance(tokens, list) and len(tokens) == 2 and tokens[1] == USDC_TOKEN):
            continue
        ctx = by_coin.get(pair.get("name"))
        if ctx is None:
            continue
        what = f"spotMetaAndAssetCtxs {pair.get('name')}"
        px = _number(ctx.get("midPx"), f"{what} midPx", optional=True) or _number(ctx.get("markPx"), f"{what} markPx")
        into.token_prices[int(tokens[0])] = px  # type: ignore[assignment]


def from_recording(record: Any) -> MarketContexts:
    """A recording: `{"perpDexs": ..., "metaAndAssetCtxs": [[dex, response], ...], "spotMetaAndAssetCtxs": ...}`."""
    if not isinstance(record, dict):
        raise InvalidSnapshot("market data recording is not an object")
    contexts = MarketContexts(origin=str(record.get("origin", "recorded info API responses")))
    for pair in record.get("metaAndAssetCtxs") or []:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise InvalidSnapshot("market data recording: metaAndAssetCtxs entries must be [dex, response]")
        add_perp_contexts(contexts, pair[0], pair[1])
    if record.get("spotMetaAndAssetCtxs") is not None:
        add_spot_contexts(contexts, record["spotMetaAndAssetCtxs"])
    return contexts
