"""Account modes (`locus.ust`): spot balances back perps for unified, dex-abstraction and portfolio-margin
accounts, and a HIP-3 dex's cash is valued in its own collateral token (collateral.py)."""

import pytest
from tests.sources.hyperliquid.conftest import B_TEXT, A, abci_state, write_rmp
from tests.sources.hyperliquid.test_snapshot import contexts

from hyperscope.domain.state import validate
from hyperscope.sources.hyperliquid.build import WalletBook, build_update
from hyperscope.sources.hyperliquid.events import Flows
from hyperscope.sources.hyperliquid.snapshot import read_snapshot

MARK = 2500.1  # ETH in the recorded metaAndAssetCtxs
HYPE_PX = 31.0


def served(tmp_path, mode=None, usdc=3_000, hype=0.0, collateral=0, prices=None, book=None):
    """B (a 2.5 ETH cross short on 7,000 USD) with `usdc` and `hype` in spot and `mode` in `ust`."""
    state = abci_state()
    locus = state["exchange"]["locus"]
    locus["scl"]["user_states"][1][1]["b"] = [[0, {"t": int(usdc * 1e8), "h": 0}]] + (
        [[150, {"t": int(hype * 1e8), "h": 0}]] if hype else []
    )
    if mode:
        locus["ust"] = [[B_TEXT, mode], [A, "d"]]  # A: dex abstraction, holding only an isolated HIP-3 position
    locus["cls"][1]["meta"]["collateralToken"] = collateral
    folder = tmp_path / f"{mode}-{usdc}-{hype}-{collateral}"
    snapshot = read_snapshot(write_rmp(folder, state))
    ctx = contexts()
    ctx.token_prices.update(prices or {})
    update = validate(build_update(snapshot, ctx, book or WalletBook(), fills=None, flows=Flows()))
    wallets = {r["address"]: r for r in update.wallets.to_pylist()}
    short = next(r for r in update.positions.to_pylist() if r["address"] == B_TEXT)
    return snapshot, wallets, short


def total(w):
    return w["perp_equity"] + w["spot_equity"] + w["vault_equity"] + w["staking_equity"]


def test_a_unified_accounts_spot_usdc_backs_its_cross_positions_and_moves_to_perp_equity(tmp_path):
    _, default, short0 = served(tmp_path)
    snapshot, unified, short = served(tmp_path, "u")
    assert short0["liquidation_px"] == pytest.approx(7000 / 2.525)
    assert short["liquidation_px"] == pytest.approx((7000 + 3000) / 2.525)  # equity = maintenance, with the spot USDC
    b0, b = default[B_TEXT], unified[B_TEXT]
    assert b["perp_equity"] == pytest.approx(b0["perp_equity"] + 3000)
    assert b["spot_equity"] == pytest.approx(b0["spot_equity"] - 3000) and b["spot_equity"] == pytest.approx(0)
    assert total(b) == pytest.approx(total(b0)) and b["pnl"] == b0["pnl"]
    assert snapshot.pooled_wallets == 1 and snapshot.account_modes == {"unified": 1, "dex abstraction": 1}


def test_dex_abstraction_leaves_the_main_dex_on_its_own_usdc(tmp_path):
    _, default, short0 = served(tmp_path)
    snapshot, wallets, short = served(tmp_path, "d")
    assert short["liquidation_px"] == short0["liquidation_px"]
    assert wallets[B_TEXT] == default[B_TEXT] and wallets[A] == default[A]  # A's HIP-3 position is isolated
    assert snapshot.pooled_wallets == 0


def test_portfolio_margin_borrows_against_hype_without_counting_it_as_equity(tmp_path):
    _, default, _ = served(tmp_path, hype=100)
    _, wallets, short = served(tmp_path, "p", hype=100)
    credit = 0.65 * 100 * HYPE_PX
    assert short["liquidation_px"] == pytest.approx((7000 + 3000 + credit) / 2.525)
    b0, b = default[B_TEXT], wallets[B_TEXT]
    assert b["perp_equity"] == pytest.approx(b0["perp_equity"] + 3000)  # the USDC, not the borrowing capacity
    assert b["spot_equity"] == pytest.approx(100 * HYPE_PX) and total(b) == pytest.approx(total(b0))


def test_the_pnl_of_a_pooled_wallet_does_not_move_when_its_spot_balance_starts_backing_perps(tmp_path):
    book = WalletBook()
    served(tmp_path, None, book=book)  # first sight: PnL anchored at 0
    _, wallets, _ = served(tmp_path, "u", book=book)
    assert wallets[B_TEXT]["pnl"] == pytest.approx(0, abs=1e-9)


def test_a_hip3_dex_settling_in_another_token_is_valued_at_that_tokens_price(tmp_path):
    _, default, _ = served(tmp_path)
    _, wallets, _ = served(tmp_path, collateral=268, prices={268: 0.5})
    gold = -7200 + 2 * 4100.2  # A's isolated HIP-3 account value, in the dex's token
    assert wallets[A]["perp_equity"] == pytest.approx(default[A]["perp_equity"] - gold + 0.5 * gold)
    snapshot, unpriced, _ = served(tmp_path, collateral=999)
    assert unpriced[A]["perp_equity"] == pytest.approx(default[A]["perp_equity"])  # counted at 1
    assert snapshot.skipped.counts == {"dexes settling in a token without a price (valued at 1)": 1}
