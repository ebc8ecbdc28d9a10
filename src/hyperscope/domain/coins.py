"""The coin (market) name grammar, once.

Hyperliquid's own perp dex names a market by its base (`BTC`); a HIP-3 dex names it `dex:BASE` (`xyz:TSLA`).
The contract calls the main dex `main` (the Info API says "")."""

from __future__ import annotations

MAIN_DEX = "main"
SEPARATOR = ":"


def is_hip3(coin: str) -> bool:
    """True for a HIP-3 market name (`dex:BASE`)."""
    return SEPARATOR in coin


def dex_of(coin: str) -> str:
    """The dex a market name belongs to: `main` for a bare base, `dex` for `dex:BASE`."""
    dex, sep, _ = coin.partition(SEPARATOR)
    return dex if sep else MAIN_DEX


def base_of(coin: str) -> str:
    """The base asset of a market name: `BTC` for `BTC` and for `hyna:BTC`."""
    return coin.partition(SEPARATOR)[2] or coin


def market_name(dex: str, name: str) -> str:
    """The market name of `name` listed on `dex` ("" or `main` for the main dex). A name that already
    carries its dex (the Info API lists HIP-3 markets as `dex:BASE`) is kept as it is."""
    if not dex or dex == MAIN_DEX or is_hip3(name):
        return name
    return f"{dex}{SEPARATOR}{name}"
