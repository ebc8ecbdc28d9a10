"""The simulated coin universe: majors, HIP-3 dexes and a long tail.

Magnitudes follow the upstream docs: BTC holds about a quarter of the market's open interest, HIP-3 markets
a few percent, and a Zipf-shaped long tail the rest. Every coin is named after a real Hyperliquid listing
(the majors and the tail alike); only a universe larger than that list gets invented tickers, and they take
the smallest shares, never above a real one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hyperscope.domain.coins import MAIN_DEX, market_name

# name, price, max leverage, szDecimals, share of market OI, annual volatility
MAJORS: tuple[tuple[str, float, int, int, float, float], ...] = (
    ("BTC", 67_800.0, 40, 5, 0.245, 0.55),
    ("ETH", 2_240.0, 25, 4, 0.150, 0.70),
    ("HYPE", 31.0, 10, 2, 0.100, 1.00),
    ("SOL", 92.0, 20, 2, 0.040, 0.85),
    ("XRP", 1.38, 20, 0, 0.0090, 0.80),
    ("TAO", 262.0, 5, 3, 0.0085, 1.10),
    ("LINK", 9.2, 10, 1, 0.0036, 0.85),
    ("kPEPE", 0.0038, 10, 0, 0.0032, 1.30),
    ("DOGE", 0.098, 20, 0, 0.0026, 0.95),
    ("SUI", 1.05, 10, 1, 0.0021, 1.00),
    ("BNB", 610.0, 10, 3, 0.0020, 0.50),
    ("AVAX", 9.1, 10, 2, 0.0015, 0.95),
    ("LTC", 58.0, 10, 2, 0.0012, 0.75),
    ("ENA", 0.31, 10, 0, 0.0012, 1.20),
    ("ADA", 0.27, 10, 0, 0.0011, 0.90),
    ("WLD", 0.42, 10, 1, 0.0010, 1.20),
    ("AAVE", 112.0, 10, 2, 0.0010, 0.90),
    ("FARTCOIN", 0.21, 10, 1, 0.0009, 1.50),
    ("PUMP", 0.0021, 5, 0, 0.0008, 1.50),
    ("ZEC", 310.0, 10, 2, 0.0008, 1.30),
    ("TRUMP", 3.9, 10, 1, 0.0007, 1.20),
    ("BCH", 330.0, 10, 3, 0.0006, 0.70),
    ("NEAR", 1.4, 10, 1, 0.0006, 1.00),
    ("APT", 1.1, 10, 2, 0.0005, 1.00),
    ("ARB", 0.16, 10, 1, 0.0005, 1.00),
    ("LINEA", 0.0319, 3, 0, 0.0003, 1.40),
)

# Real Hyperliquid perp listings beyond the majors, roughly by open interest: the long tail's names.
TAIL_LISTINGS: tuple[str, ...] = (
    "OP",
    "INJ",
    "TIA",
    "SEI",
    "JUP",
    "WIF",
    "POPCAT",
    "PENGU",
    "VIRTUAL",
    "ONDO",
    "TON",
    "TRX",
    "DOT",
    "UNI",
    "ATOM",
    "FIL",
    "ETC",
    "CRV",
    "LDO",
    "PENDLE",
    "EIGEN",
    "ETHFI",
    "STRK",
    "ZRO",
    "MNT",
    "ORDI",
    "kBONK",
    "kSHIB",
    "kFLOKI",
    "MEME",
    "NOT",
    "ZK",
    "RENDER",
    "FET",
    "AR",
    "STX",
    "IMX",
    "GALA",
    "SAND",
    "APE",
    "DYDX",
    "SNX",
    "GMX",
    "RUNE",
    "KAS",
    "PYTH",
    "JTO",
    "W",
    "MEW",
    "MOODENG",
    "GOAT",
    "AIXBT",
    "GRASS",
    "S",
    "BERA",
    "IP",
    "KAITO",
    "BLAST",
    "HBAR",
    "XLM",
    "ALGO",
    "COMP",
    "MKR",
    "SUSHI",
    "YGG",
    "BLUR",
    "CFX",
    "MINA",
    "POL",
    "BOME",
    "TURBO",
    "PNUT",
    "CHILLGUY",
    "MOVE",
    "USUAL",
    "LAYER",
    "TST",
    "PAXG",
    "SPX",
    "RESOLV",
    "INIT",
    "BABY",
    "ZORA",
    "XPL",
    "ASTER",
    "WLFI",
    "ICP",
    "BIO",
    "PURR",
    "HMSTR",
    "ENS",
    "MAV",
    "ARK",
    "BSV",
    "CAKE",
    "IOTA",
    "NTRN",
    "POLYX",
    "REQ",
    "RSR",
    "SCR",
    "SUPER",
    "UMA",
    "USTC",
    "XAI",
    "ZEN",
    "ZETA",
    "ACE",
    "ALT",
    "BADGER",
    "BANANA",
    "BIGTIME",
    "BNT",
    "CELO",
    "CYBER",
    "DYM",
    "FXS",
    "HFT",
    "ILV",
    "JELLY",
    "LOOM",
    "MANTA",
    "MAVIA",
    "OGN",
    "ORBS",
    "PIXEL",
    "PEOPLE",
    "POLY",
    "RDNT",
    "STG",
    "STRAX",
    "TRB",
    "ZRX",
    "MATIC",
    "RNDR",
    "FTM",
)

# HIP-3 dexes: dex -> (coin, price, max leverage, szDecimals, share of market OI, annual volatility)
HIP3: dict[str, tuple[tuple[str, float, int, int, float, float], ...]] = {
    "xyz": (
        ("BRENTOIL", 66.0, 20, 2, 0.0350, 0.35),
        ("GOLD", 4_100.0, 20, 4, 0.0220, 0.18),
        ("SILVER", 48.0, 20, 2, 0.0150, 0.30),
        ("SP500", 6_700.0, 20, 3, 0.0110, 0.16),
        ("NVDA", 180.0, 10, 3, 0.0070, 0.45),
        ("TSLA", 420.0, 10, 3, 0.0026, 0.55),
        ("GOOGL", 280.0, 10, 3, 0.0024, 0.35),
        ("AAPL", 260.0, 10, 3, 0.0007, 0.30),
    ),
    "hyna": (("BTC", 67_800.0, 20, 5, 0.0048, 0.55), ("ETH", 2_240.0, 20, 4, 0.0008, 0.70)),
    "cash": (("USA500", 6_700.0, 20, 3, 0.0043, 0.16), ("GOLD", 4_100.0, 20, 4, 0.0005, 0.18)),
    "flx": (
        ("OIL", 62.0, 10, 2, 0.0008, 0.40),
        ("GOLD", 4_100.0, 10, 4, 0.0002, 0.18),
        ("PALLADIUM", 1_400.0, 10, 3, 0.00005, 0.35),
    ),
    "vntl": (
        ("MAG7", 110.0, 5, 2, 0.0003, 0.30),
        ("SPACEX", 230.0, 5, 2, 0.0002, 0.40),
        ("ANTHROPIC", 260.0, 5, 2, 0.00014, 0.40),
    ),
    "km": (
        ("US500", 6_700.0, 10, 3, 0.0005, 0.16),
        ("SILVER", 48.0, 10, 2, 0.0001, 0.30),
        ("SEMI", 300.0, 5, 2, 0.00002, 0.45),
    ),
}


@dataclass(frozen=True)
class Universe:
    """Per-coin static facts, index-aligned arrays."""

    coins: list[str]
    dex: list[str]
    price: np.ndarray
    max_leverage: np.ndarray
    sz_decimals: np.ndarray
    oi_share: np.ndarray  # sums to 1
    vol: np.ndarray  # annualised
    beta: np.ndarray  # loading on the BTC factor

    @property
    def n(self) -> int:
        return len(self.coins)

    @property
    def lot(self) -> np.ndarray:
        return 10.0 ** (-self.sz_decimals.astype(np.float64))

    @property
    def scale(self) -> np.ndarray:
        """Lots per coin unit. Sizes are `lots / scale`: division by a power of ten gives the nearest double
        (30.63541), where multiplying by `lot` would not (30.635409999999997)."""
        return 10.0 ** self.sz_decimals.astype(np.float64)

    @property
    def hip3(self) -> np.ndarray:
        return np.array([d != MAIN_DEX for d in self.dex])


REAL_LISTINGS = frozenset({m[0] for m in MAJORS} | set(TAIL_LISTINGS))


def _tail_names(rng: np.random.Generator, count: int, taken: set[str]) -> list[str]:
    """Real listings first (in order), then invented tickers if the universe is larger than the list."""
    names = [n for n in TAIL_LISTINGS if n not in taken][:count]
    taken.update(names)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    while len(names) < count:
        length = int(rng.integers(3, 6))
        name = "".join(rng.choice(letters, size=length))
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def build_universe(rng: np.random.Generator, n_coins: int = 300) -> Universe:
    """Majors + HIP-3 markets + a long tail up to `n_coins` coins in total."""
    rows: list[tuple[str, str, float, int, int, float, float, float]] = []
    for name, px, lev, szd, share, vol in MAJORS:
        rows.append((name, MAIN_DEX, px, lev, szd, share, vol, 0.6 if name != "BTC" else 1.0))
    for dex, coins in HIP3.items():
        for name, px, lev, szd, share, vol in coins:
            beta = 1.0 if name in ("BTC", "ETH") else 0.2
            rows.append((market_name(dex, name), dex, px, lev, szd, share, vol, beta))
    n_tail = max(0, n_coins - len(rows))
    if n_tail:
        names = _tail_names(rng, n_tail, {r[0] for r in rows})
        # the tail goes on from the smallest major down a Zipf curve over the ranks (open interest by rank on
        # the real exchange): each tail coin below every major, together a couple of percent
        rank = len(MAJORS) + np.arange(1, n_tail + 1)
        tail_shares = MAJORS[-1][4] * (rank / len(MAJORS)) ** -1.15
        prices = np.exp(rng.uniform(np.log(0.0005), np.log(60.0), n_tail))
        for i, name in enumerate(names):
            px = float(prices[i])
            szd = int(np.clip(np.floor(np.log10(px)) + 2, 0, 3)) if px >= 1 else 0
            lev = int(rng.choice([3, 5, 10], p=[0.4, 0.35, 0.25]))
            rows.append((name, MAIN_DEX, px, lev, szd, float(tail_shares[i]), float(rng.uniform(0.9, 1.8)), 0.5))
    rows = rows[:n_coins]
    share_arr = np.array([r[5] for r in rows])
    return Universe(
        coins=[r[0] for r in rows],
        dex=[r[1] for r in rows],
        price=np.array([r[2] for r in rows]),
        max_leverage=np.array([r[3] for r in rows], dtype=np.int32),
        sz_decimals=np.array([r[4] for r in rows], dtype=np.int32),
        oi_share=share_arr / share_arr.sum(),
        vol=np.array([r[6] for r in rows]),
        beta=np.array([r[7] for r in rows]),
    )
