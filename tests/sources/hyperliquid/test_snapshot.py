"""Reading a node's state snapshot: shapes, scales, defaults, and drifted input rejected with its path."""

import numpy as np
import pyarrow.compute as pc
import pytest
from tests.sources.hyperliquid.conftest import B_TEXT, A, C, abci_state, load, write_rmp

from hyperscope.domain.state import validate
from hyperscope.sources.hyperliquid.build import WalletBook, build_update
from hyperscope.sources.hyperliquid.contexts import MarketContexts, add_perp_contexts, add_spot_contexts
from hyperscope.sources.hyperliquid.events import Flows
from hyperscope.sources.hyperliquid.snapshot import (
    LEV_CROSS,
    LEV_DEFAULT,
    LEV_ISOLATED,
    InvalidSnapshot,
    read_snapshot,
    users_with_positions,
)


def test_the_snapshot_decodes_with_the_documented_scales(rmp):
    snap = read_snapshot(rmp)
    assert snap.height == 941000000 and snap.time_ms == 1774947600123
    main, hip3 = snap.clearinghouses
    assert main.coins == ["BTC", "ETH"] and hip3.coins == ["xyz:GOLD"] and hip3.dex == "xyz" and main.dex == ""
    assert main.oracle_px().tolist() == [60000.0, 2500.0] and hip3.oracle_px().tolist() == [4100.0]
    assert [snap.addresses[int(u)].as_py() for u in main.user] == [A, B_TEXT, C.lower()]  # text, 20 bytes, upper case
    assert main.pos_size.tolist() == [25000, -25000]  # the size-0 leverage preference is skipped
    assert main.pos_lev_kind.tolist() == [LEV_CROSS, LEV_DEFAULT] and main.pos_leverage[0] == 20
    assert hip3.pos_coin.tolist() == [0, 0]  # full asset id 110000 -> row 0
    assert hip3.pos_lev_kind.tolist() == [LEV_ISOLATED, LEV_DEFAULT]
    assert snap.spot_token.tolist() == [0, 150] and snap.vault_fraction.tolist() == [0.25]


def contexts():
    ctx = MarketContexts(origin="test")
    add_perp_contexts(ctx, "", load("meta_and_ctxs_main.json"))
    add_perp_contexts(ctx, "xyz", load("meta_and_ctxs_xyz.json"))
    add_spot_contexts(ctx, load("spot_meta_and_ctxs.json"))
    return ctx


def test_a_snapshot_becomes_a_valid_state_update_with_node_margin_math(rmp):
    update = validate(build_update(read_snapshot(rmp), contexts(), WalletBook(), fills=None, flows=Flows()))
    pos = {(r["address"], r["coin"]): r for r in update.positions.to_pylist()}
    eth_long = pos[(A, "ETH")]
    assert eth_long["size"] == 2.5 and eth_long["entry_px"] == 2000.0 and eth_long["leverage"] == 20
    assert eth_long["leverage_type"] == "cross" and eth_long["funding"] == -0.12  # f.o: funding paid, 0.12 USD
    eth_short = pos[(B_TEXT, "ETH")]  # no "l": as public parsers read it, cross at min(max leverage 50, 20)
    assert eth_short["leverage_type"] == "cross" and eth_short["leverage"] == 20 and eth_short["entry_px"] == 2040.0
    gold = pos[(A, "xyz:GOLD")]
    assert gold["leverage_type"] == "isolated" and gold["leverage"] == 10 and gold["dex"] == "xyz"
    assert pos[(C.lower(), "xyz:GOLD")]["leverage_type"] == "isolated"  # HIP-3 default
    # isolated margin = raw USD + size * mark: -7200 + 2 * 4100.2
    assert gold["margin_used"] == pytest.approx(-7200 + 2 * 4100.2)
    mark = 2500.1  # from metaAndAssetCtxs, not the oracle
    wallets = {r["address"]: r for r in update.wallets.to_pylist()}
    a = wallets[A]
    assert a["perp_equity"] == pytest.approx(10_000 + 2.5 * mark + (-7200 + 2 * 4100.2))
    assert a["balance"] == pytest.approx(10_000 - 7200)
    assert a["spot_equity"] == pytest.approx(150 + 20 * 31.0)  # USDC at 1, HYPE at the @107 mid
    b_equity = 7000 - 2.5 * mark
    assert a["vault_equity"] == pytest.approx(0.25 * b_equity)  # a quarter of vault B's account value
    # the cross short's liquidation price solves equity = maintenance (50x: 1%) with the mark moving
    liq = eth_short["liquidation_px"]
    assert 7000 - 2.5 * liq == pytest.approx(2.5 * liq * 0.01, abs=1e-9) and liq == pytest.approx(7000 / 2.525)
    assert eth_long["liquidation_px"] is None  # 10,000 USD behind 2.5 ETH: no price liquidates it
    markets = {r["coin"]: r for r in update.markets.to_pylist()}
    assert markets["BTC"]["max_leverage"] == 50 and markets["ETH"]["mark_px"] == mark


def test_without_market_data_the_oracle_price_stands_in_for_the_mark(rmp):
    update = validate(build_update(read_snapshot(rmp), MarketContexts(), WalletBook(), fills=None, flows=Flows()))
    marks = dict(
        zip(update.markets.column("coin").to_pylist(), update.markets.column("mark_px").to_pylist(), strict=True)
    )
    assert marks == {"BTC": 60000.0, "ETH": 2500.0, "xyz:GOLD": 4100.0}
    assert pc.all(pc.equal(update.markets.column("funding"), 0.0)).as_py()


def test_users_with_positions_is_a_cheap_pass(rmp):
    assert set(users_with_positions(rmp)) == {A, B_TEXT, C.lower()}


STATES = ["exchange", "locus", "cls", 0, "user_states", "user_to_state"]


def at(state, *path):
    for step in path:
        state = state[step]
    return state


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda s: s["exchange"]["locus"]["cls"][1]["meta"].pop("universe"), "cls[1].meta"),
        (lambda s: s["exchange"]["locus"].__setitem__("cls", {}), "locus.cls"),
        (lambda s: at(s, *STATES).__setitem__(0, ["0x12", {"u": 1}]), "cls[0].user_states.user_to_state[0]"),
    ],
)
def test_what_cannot_be_a_snapshot_is_rejected_whole_naming_the_height_and_the_path(tmp_path, mutate, where):
    state = abci_state()
    mutate(state)
    with pytest.raises(InvalidSnapshot) as raised:
        read_snapshot(write_rmp(tmp_path, state))
    assert "snapshot 941000000" in raised.value.message and where in raised.value.message, raised.value.message


@pytest.mark.parametrize(
    ("mutate", "kind", "where", "parallel"),
    [
        (
            lambda s: at(s, *STATES, 1, 1, "p", "p", 0, 1).update(s="big"),
            "position entries that could not be read",
            "cls[0].user_states.user_to_state[1].p.p[0]",
            False,
        ),
        (
            lambda s: at(s, *STATES, 1, 1, "p", "p", 0, 1).pop("e"),
            "position entries that could not be read",
            "user_to_state[1].p.p[0]",
            False,
        ),
        (
            lambda s: at(s, *STATES).__setitem__(1, {"u": 5}),
            "user states that could not be read",
            "user_to_state[1]",
            False,
        ),
        (
            lambda s: at(s, *STATES, 0, 1, "p", "p", 0).__setitem__(0, 7),
            "positions on an asset meta does not list",
            "cls[0]: asset 7",
            False,
        ),
        (
            lambda s: s["exchange"]["locus"]["vlt"][0][1]["user_states"][0][1]["o"].update(f=1.5),
            "vault followers that could not be read",
            "vlt[0].user_states[0]",
            False,
        ),
        (
            lambda s: s["exchange"]["locus"]["vlt"][0][1]["user_states"][0][1].pop("o"),
            "vault followers that could not be read",
            "vlt[0].user_states[0]",
            False,
        ),
        (
            lambda s: s["exchange"]["locus"]["scl"]["user_states"][0][1]["b"][0][1].update(t="1.0"),
            "spot balances that could not be read",
            "scl.user_states[0]",
            False,
        ),
        (
            lambda s: s["exchange"]["locus"]["scl"]["user_states"][0][1]["b"][0][1].update(t="1.0"),
            "spot balances that could not be read",
            "scl.user_states[0]",
            True,
        ),  # read by the helper process
    ],
)
def test_a_narrow_surprise_is_skipped_and_counted_and_the_rest_is_read(tmp_path, mutate, kind, where, parallel):
    whole = read_snapshot(write_rmp(tmp_path / "a", abci_state()))
    state = abci_state()
    mutate(state)
    snapshot = read_snapshot(write_rmp(tmp_path / "b", state), parallel=parallel)
    assert snapshot.skipped.counts == {kind: 1}, snapshot.skipped.summary()
    assert where in snapshot.skipped.first[kind], snapshot.skipped.first[kind]
    held = lambda s: sum(h.pos_size.size for h in s.clearinghouses)  # noqa: E731
    lost_a_position = "position" in kind or "user states" in kind
    assert held(snapshot) == held(whole) - (1 if lost_a_position else 0)
    assert len(snapshot.clearinghouses) == len(whole.clearinghouses)
    # a spot user state that does not read is skipped whole: the fixture's holds both of its two balances
    assert snapshot.spot_total.size == whole.spot_total.size - (2 if "spot" in kind else 0)
    update = build_update(snapshot, contexts(), WalletBook(), fills=None, flows=Flows())
    assert update.partial == lost_a_position  # a coin's long and short need not match then
    validate(update)


def test_a_truncated_file_is_rejected(tmp_path):
    path = write_rmp(tmp_path, abci_state(books=2000))
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(InvalidSnapshot, match="snapshot 941000000: unreadable"):
        read_snapshot(path)


def test_sizes_that_do_not_balance_are_rejected_by_the_contract(tmp_path):
    state = abci_state()
    state["exchange"]["locus"]["cls"][0]["user_states"]["user_to_state"][1][1]["p"]["p"][0][1]["s"] = -24000
    update = build_update(
        read_snapshot(write_rmp(tmp_path, state)), contexts(), WalletBook(), fills=None, flows=Flows()
    )
    with pytest.raises(Exception, match="long size 2.5 != short size 2.4 for ETH"):
        validate(update)


def test_positions_on_a_coin_without_any_price_are_skipped_and_counted(tmp_path):
    state = abci_state()
    state["exchange"]["locus"]["cls"][0]["oracle"]["pxs"][1] = []
    snapshot = read_snapshot(write_rmp(tmp_path, state))
    update = validate(build_update(snapshot, MarketContexts(), WalletBook(), fills=None, flows=Flows()))
    assert snapshot.skipped.counts == {"positions on a coin without a price": 2} and update.partial
    assert "ETH" not in update.positions.column("coin").to_pylist()


def test_a_file_named_for_one_height_holding_another_is_read_as_its_name_says(tmp_path, caplog):
    snapshot = read_snapshot(write_rmp(tmp_path, abci_state(), height=941000001))
    assert snapshot.height == 941000001
    assert snapshot.skipped.counts == {"snapshots whose ctx.height is not their file name's": 1}
    assert any("ctx.height says 941000000" in r.getMessage() for r in caplog.records)


def test_vault_fraction_times_a_negative_vault_is_zero(rmp):
    update = build_update(read_snapshot(rmp), contexts(), WalletBook(), fills=None, flows=Flows())
    assert np.all(update.wallets.column("vault_equity").to_numpy() >= 0)


def test_a_helper_process_reads_the_spot_balances_of_big_files_with_the_same_result(rmp):
    one, two = read_snapshot(rmp, parallel=False), read_snapshot(rmp, parallel=True)

    def spot(s):
        addresses = (s.addresses[int(u)].as_py() for u in s.spot_user)
        return sorted(zip(addresses, s.spot_token.tolist(), s.spot_total.tolist(), strict=True))

    assert spot(one) == spot(two) and len(spot(one)) == 2
    assert set(one.addresses.to_pylist()) == set(two.addresses.to_pylist())


@pytest.mark.parametrize(
    "ust",
    [
        [["0x" + "01" * 20, "u"], ["0x" + "02" * 20, "p"], ["0x" + "03" * 20, 7]],
        {"0x" + "01" * 20: "u", "0x" + "02" * 20: {"p": {"borrowed": 1}}, "0x" + "03" * 20: None},
    ],
)
def test_account_modes_are_counted_whatever_the_shape_of_ust(tmp_path, ust):
    state = abci_state()
    state["exchange"]["locus"]["ust"] = ust
    snapshot = read_snapshot(write_rmp(tmp_path, state))
    assert snapshot.account_modes == {"unified": 1, "portfolio margin": 1, "unknown": 1}
    assert not snapshot.skipped and len(snapshot.clearinghouses) == 2
