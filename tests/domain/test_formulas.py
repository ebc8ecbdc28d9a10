import hashlib

import numpy as np
import pyarrow as pa
import pytest

from hyperscope.domain import formulas
from hyperscope.domain.ids import position_ids, sha256_hex


def test_value_and_upnl_verified_row():
    # semantics.md: 700 BTC at mark 67,819 from entry 68,420.24587
    assert formulas.position_value(np.array([700.0]), np.array([67_819.0]))[0] == 47_473_300.0
    upnl = formulas.unrealized_pnl(np.array([1]), np.array([700.0]), np.array([67_819.0]), np.array([68_420.24587]))
    assert upnl[0] == pytest.approx(-420_872.109, abs=1e-3)


@pytest.mark.parametrize(
    ("side", "entry", "mark", "liq", "expected"),
    [
        (1, 68_420.24587, 67_819.0, 27_965.013971, 1.486200527786029),
        (1, 78_350.0, 67_819.0, 0.0, 13.44097000638162),
        (-1, 2_304.07, 2_700.5, 4_183.41, 21.094),
        (-1, 2_240.0, 2_000.0, 3_615.0, 0.0),  # a short in profit: clamped at 0
        (1, 100.0, 10.0, 50.0, 100.0),  # past the liquidation price: clamped at 100
        (1, 100.0, 90.0, np.nan, 10.0),  # no liquidation price: a long uses 0 (upstream: 13.44097)
        (1, 78350.0, 67819.0, np.nan, 13.44097000638),  # the docs' last sample row
        (-1, 100.0, 110.0, np.nan, 0.0),  # a short without one: 0
        # the liquidation price between the entry and the mark (a cross account whose other positions ate its
        # margin): as the contract's formula reads, over 100, so 100, never 0
        (-1, 100_000.0, 91_000.0, 95_300.0, 100.0),  # a short in profit 4.5% below its liquidation price
        (1, 2_000.0, 2_100.0, 2_050.0, 100.0),  # a long above both
        (1, 100.0, 100.0, 100.0, 0.0),  # liquidation at the entry: no distance to travel
    ],
)
def test_liquidation_progress(side, entry, mark, liq, expected):
    got = formulas.liquidation_progress(np.array([side]), np.array([entry]), np.array([mark]), np.array([liq]))
    assert got[0] == pytest.approx(expected, abs=1e-3)


def test_liquidation_price_matches_hyperliquid_example():
    # sources.md, isolated ETH: mark 2985.9, size 0.0335, isolated margin 4.967826, max leverage 50
    mark, size, margin = 2985.9, 0.0335, 4.967826
    mmr = formulas.maintenance_rate(np.array([50]))
    available = margin - size * mark * mmr
    liq = formulas.liquidation_price(np.array([1]), np.array([size]), np.array([mark]), available, mmr)
    assert liq[0] == pytest.approx(2866.26936529, abs=1e-3)


def test_long_fraction_and_perp_bias():
    assert formulas.long_fraction(np.array([1_972_702.88576]), np.array([4_053_999.39276]))[0] == pytest.approx(
        0.487, abs=5e-4
    )
    assert np.isnan(formulas.long_fraction(np.array([0.0]), np.array([0.0]))[0])
    bias = formulas.perp_bias(np.array([108_075_482.73]), np.array([61_502_594.37]), np.array([57_458_083.37]))
    assert bias[0] == pytest.approx(0.81, abs=5e-3)


def test_sha256_matches_hashlib_for_every_block_count():
    from hyperscope.domain.ids import SMALL

    messages = ["", "a", "x" * 55, "y" * 56, "z" * 63, "q" * 64, "w" * 119, "v" * 120, "é漢" * 30]
    for batch in (messages, messages * (SMALL // len(messages) + 1)):  # the one-by-one and the vectorised path
        got = sha256_hex(pa.array(batch)).to_pylist()
        assert got == [hashlib.sha256(m.encode()).hexdigest() for m in batch]


def test_position_id_definition():
    address, coin, ms = "0xa5b0edf6b55128e0ddae8e51ac538c3188401d41", "BTC", 1772483244000
    got = position_ids(pa.array([address]), pa.array([coin]), pa.array([ms])).to_pylist()[0]
    assert got == hashlib.sha256(f"{address}|{coin}|{ms}".encode()).hexdigest()
