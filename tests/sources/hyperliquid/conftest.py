"""Small node files of the exact upstream shapes, written by the tests (sources.md "Test fixtures to build")."""

from pathlib import Path

import msgpack
import orjson
import pytest

DATA = Path(__file__).parents[2] / "data" / "hyperliquid"
A = "0x" + "01" * 20  # text address
B = bytes.fromhex("02" * 20)  # a 20-byte binary address
B_TEXT = "0x" + "02" * 20
C = "0x" + "0C" * 20  # checksummed-style upper case


def load(name: str):
    return orjson.loads((DATA / name).read_bytes())


def main_dex(users):
    return {
        "meta": {
            "universe": [
                {"name": "BTC", "szDecimals": 5, "marginTableId": 50},
                {"name": "ETH", "szDecimals": 4, "marginTableId": 50},
            ],
            "marginTableIdToMarginTable": [
                [50, {"margin_tiers": [{"lower_bound": 0, "max_leverage": 50, "maintenance_deduction": 0}]}]
            ],
            "collateralToken": 0,
        },
        "oracle": {"pxs": [[{"px": 600000}], [{"px": 250000}]]},
        "user_states": {"users_with_positions": [A, B], "user_to_state": users},
        "total_net_deposit": 0,
    }


def hip3_dex(users):
    return {
        "meta": {"universe": [{"name": "xyz:GOLD", "szDecimals": 4, "marginTableId": 10}], "collateralToken": 0},
        "oracle": {"pxs": [[{"px": 410000}]]},
        "user_states": {"users_with_positions": [A, C], "user_to_state": users},
    }


def abci_state(main_users=None, hip3_users=None, books=3):
    """exchange.perp_dexs (order books) comes before exchange.locus, as on mainnet."""
    main_users = (
        main_users
        if main_users is not None
        else [
            [
                A,
                {
                    "u": 10_000_000_000,
                    "S": {"s": 1, "r": 1},
                    "p": {
                        "p": [
                            [
                                1,
                                {
                                    "s": 25000,
                                    "e": 5_000_000_000,
                                    "l": {"C": 20},
                                    "f": {"a": 100000, "o": 120000, "c": 0},
                                },
                            ],
                            [0, {"s": 0, "e": 0, "l": {"C": 10}}],
                        ]
                    },
                },
            ],  # size 0: a leverage preference only
            [
                B,
                {
                    "u": 7_000_000_000,
                    "p": {"p": [[1, {"s": -25000, "e": 5_100_000_000, "M": 50, "f": {"a": 0, "o": -5000, "c": 0}}]]},
                },
            ],
            [C, {"u": 0}],
        ]
    )
    hip3_users = (
        hip3_users
        if hip3_users is not None
        else [
            [
                A,
                {
                    "u": 0,
                    "p": {
                        "p": [[110000, {"s": 20000, "e": 8_000_000_000, "l": {"I": {"l": 10, "u": -7_200_000_000}}}]]
                    },
                },
            ],
            [
                C,
                {"u": 0, "p": {"p": [[110000, {"s": -20000, "e": 8_400_000_000}]]}},
            ],  # no "l": HIP-3 defaults to isolated
        ]
    )
    book = {
        "halfs": [[], []],
        "oid_to_key": [],
        "book_orders": [
            {"p": 600000 + i, "r": 1, "O": i, "u": A, "t": 0, "o": 1, "c": {"t": 0, "S": 1, "r": False, "s": 1, "l": 1}}
            for i in range(books)
        ],
        "user_states": [],
    }
    return {
        "exchange": {
            "perp_dexs": [{"books": [book], "funding_tracker": {}, "twap_tracker": {}}],
            "locus": {
                "ctx": {
                    "initial_height": 0,
                    "height": 941000000,
                    "time": "2026-03-31T09:00:00.123456789",
                    "next_oid": 5,
                },
                "cls": [main_dex(main_users), hip3_dex(hip3_users)],
                "scl": {
                    "user_states": [
                        [A, {"b": [[0, {"t": 150_000_000_00, "h": 0}], [150, {"t": 2_000_000_000}]]}],
                        [B, {"b": []}],
                    ]
                },
                "vlt": [[B, {"user_states": [[A, {"o": {"f": 0.25, "b": 0}}]]}]],
                "ftr": {"fee_schedule": {}},
            },
            "c_staking": {"stakes": []},
        }
    }


def write_rmp(folder: Path, state, height=941000000, day="20260331") -> Path:
    path = folder / "periodic_abci_states" / day / f"{height}.rmp"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # as the node does: a named file that exists is whole
    tmp.write_bytes(msgpack.packb(state, use_bin_type=True))
    tmp.replace(path)
    return path


@pytest.fixture
def rmp(tmp_path):
    return write_rmp(tmp_path, abci_state())
