import pytest

from hyperscope.domain.state import validate
from hyperscope.errors import InvalidStateUpdate
from tests.factories import STEP, T0, make_fill, make_markets, make_position, make_state, make_wallet


def balanced():
    return [make_position(1, "BTC", 1.5), make_position(2, "BTC", -1.0), make_position(3, "BTC", -0.5)]


def test_valid_update_passes_and_lowercases_addresses():
    wallets = [make_wallet(i) for i in range(1, 4)]
    wallets[0]["address"] = wallets[0]["address"].upper().replace("0X", "0x")
    positions = balanced()
    positions[0]["address"] = wallets[0]["address"]
    checked = validate(make_state(1, positions, wallets))
    assert checked.wallets.column("address")[0].as_py() == "0x" + "0" * 39 + "1"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda p, w, m: p.append(make_position(4, "DOGE", 1.0)), "unknown coin"),
        (lambda p, w, m: p.__setitem__(0, make_position(1, "BTC", 2.0)), "long size"),
        (lambda p, w, m: p.append(make_position(1, "BTC", 1.0)), "duplicate"),
        (lambda p, w, m: p.append(make_position(99, "ETH", 0.0)), "not in wallets"),
        (lambda p, w, m: w.__setitem__(0, make_wallet(1, address="0xnothex")), "expected 0x"),
        (lambda p, w, m: w.append(make_wallet(1)), "duplicate address"),
        (lambda p, w, m: w.__setitem__(1, make_wallet(2, perp_equity=float("nan"))), "finite"),
        (lambda p, w, m: p.__setitem__(0, make_position(1, "BTC", 1.5, leverage_type="portfolio")), "leverage_type"),
    ],
)
def test_broken_invariants_are_rejected_with_a_reason(mutate, reason):
    positions, wallets = balanced(), [make_wallet(i) for i in range(1, 11)]
    markets = make_markets()
    mutate(positions, wallets, markets)
    with pytest.raises(InvalidStateUpdate, match=reason):
        validate(make_state(1, positions, wallets, markets=markets))


def test_nan_price_is_rejected():
    markets = make_markets({"BTC": float("nan"), "ETH": 2_500.0})
    with pytest.raises(InvalidStateUpdate, match="mark_px"):
        validate(make_state(1, [], markets=markets))


def test_missing_column_is_rejected():
    update = make_state(1, balanced())
    bad = update.positions.drop_columns(["entry_px"])
    with pytest.raises(InvalidStateUpdate, match="missing column"):
        validate(type(update)(1, update.time, update.markets, update.wallets, bad))
    # the same update with the column present passes: the rejection is about the column, nothing else
    assert validate(update).positions.num_rows == len(balanced())


@pytest.mark.parametrize(
    ("offset", "passes"),
    [(-399 * 86_400_000, True), (3_600_000, True), (-401 * 86_400_000, False), (86_400_000 + 1, False)],
)
def test_fills_stamped_far_from_their_update_are_rejected(offset, passes):
    # a fill is one since the previous update: a day after the update, or over 400 days before, is not one
    # (a store would otherwise make room for every day in between)
    update = make_state(2, balanced(), fills=[make_fill(1, "BTC", "B", 0.5, 1.0, T0 + 2 * STEP + offset)])
    if passes:
        assert validate(update).fills.num_rows == 1
    else:
        with pytest.raises(InvalidStateUpdate, match="stamped outside"):
            validate(update)
    far = make_state(2, balanced(), fills=[make_fill(1, "BTC", "B", 0.5, 1.0, 1)])  # 1970
    with pytest.raises(InvalidStateUpdate, match="1970-01-01"):
        validate(far)
