import hashlib

from hyperscope.domain.state import validate
from hyperscope.tracking import track
from hyperscope.tracking.lifecycle import possible_close_times
from tests.factories import T0, addr, make_fill, make_position, make_state


def run(*updates):
    previous, results = None, []
    for update in updates:
        tracked = track(validate(update), previous)
        previous = tracked.open
        results.append(tracked)
    return results


def by_address(table):
    return {row["address"]: row for row in table.to_pylist()}


def test_open_resize_keeps_id_and_open_time():
    a = make_state(1, [make_position(1, "BTC", 1.0), make_position(2, "BTC", -1.0)])
    b = make_state(2, [make_position(1, "BTC", 3.0), make_position(2, "BTC", -3.0)])
    first, second = run(a, b)
    one, two = by_address(first.open)[addr(1)], by_address(second.open)[addr(1)]
    assert one["id"] == two["id"]
    assert one["open_time"] == two["open_time"]
    assert two["size"] == 3.0 and second.closed.num_rows == 0
    expected = hashlib.sha256(f"{addr(1)}|BTC|{a.time}".encode()).hexdigest()
    assert one["id"] == expected  # no fills and no hint: opened at the first update that showed it


def test_flip_closes_one_position_and_opens_another_at_the_fill_time():
    a = make_state(1, [make_position(1, "BTC", 1.0), make_position(2, "BTC", -1.0)])
    flip_time = T0 + 2 * 900_000 - 5_000
    fills = [make_fill(1, "BTC", "A", 2.0, 1.0, flip_time), make_fill(2, "BTC", "B", 2.0, -1.0, flip_time)]
    b = make_state(2, [make_position(1, "BTC", -1.0), make_position(2, "BTC", 1.0)], fills=fills)
    first, second = run(a, b)
    closed = by_address(second.closed)
    assert set(closed) == {addr(1), addr(2)}
    assert closed[addr(1)]["close_time"].timestamp() * 1000 == flip_time
    new = by_address(second.open)[addr(1)]
    assert new["side"] == "short" and new["open_time"].timestamp() * 1000 == flip_time
    assert new["id"] != by_address(first.open)[addr(1)]["id"]
    assert second.flipped == 2


def test_close_and_disappearing_wallet_close_at_the_update_without_fills():
    a = make_state(
        1,
        [
            make_position(1, "BTC", 1.0),
            make_position(2, "BTC", -1.0),
            make_position(3, "ETH", 2.0),
            make_position(4, "ETH", -2.0),
        ],
    )
    wallets_without_4 = [w for w in a.wallets.to_pylist() if w["address"] != addr(4)]
    b = make_state(2, [make_position(3, "ETH", 2.0), make_position(5, "ETH", -2.0)], wallets=wallets_without_4)
    _, second = run(a, b)
    closed = by_address(second.closed)
    assert set(closed) == {addr(1), addr(2), addr(4)}
    assert all(r["close_time"].timestamp() * 1000 == b.time for r in closed.values())
    assert second.open.num_rows == 2


def test_liquidation_fill_sets_the_close_time():
    a = make_state(1, [make_position(1, "BTC", 1.0), make_position(2, "BTC", -1.0)])
    liq_time = T0 + 2 * 900_000 - 1
    fills = [
        make_fill(1, "BTC", "A", 1.0, 1.0, liq_time, liquidation=True),
        make_fill(9, "BTC", "B", 1.0, 0.0, liq_time),
    ]
    b = make_state(2, [make_position(9, "BTC", 1.0), make_position(2, "BTC", -1.0)], fills=fills)
    _, second = run(a, b)
    closed = by_address(second.closed)
    assert closed[addr(1)]["close_time"].timestamp() * 1000 == liq_time
    assert by_address(second.open)[addr(9)]["open_time"].timestamp() * 1000 == liq_time


def test_close_and_reopen_between_updates_is_a_new_lifecycle():
    a = make_state(1, [make_position(1, "BTC", 1.0), make_position(2, "BTC", -1.0)])
    t_close, t_open = T0 + 2 * 900_000 - 9_000, T0 + 2 * 900_000 - 3_000
    fills = [make_fill(1, "BTC", "A", 1.0, 1.0, t_close), make_fill(1, "BTC", "B", 1.0, 0.0, t_open)]
    b = make_state(2, [make_position(1, "BTC", 1.0), make_position(2, "BTC", -1.0)], fills=fills)
    first, second = run(a, b)
    assert by_address(second.closed)[addr(1)]["close_time"].timestamp() * 1000 == t_close
    assert by_address(second.open)[addr(1)]["open_time"].timestamp() * 1000 == t_open
    assert by_address(second.open)[addr(2)]["id"] == by_address(first.open)[addr(2)]["id"]


def test_open_time_hint_is_used_without_fills():
    hint = T0 - 86_400_000
    a = make_state(1, [make_position(1, "BTC", 1.0, open_time_hint=hint), make_position(2, "BTC", -1.0)])
    (first,) = run(a)
    assert by_address(first.open)[addr(1)]["open_time"].timestamp() * 1000 == hint


def test_possible_close_times_hold_every_close_time_before_tracking():
    # closes at fill times (one on the day before the update, one stamped after it: clipped to the update),
    # and a close without a fill at the update's own time; the times are known before tracking runs
    a = make_state(1, [make_position(i, "BTC", 1.0 if i % 2 else -1.0) for i in range(1, 5)])
    now = T0 + 3 * 86_400_000
    day_before = now - 86_400_000 - 7_000
    fills = [
        make_fill(1, "BTC", "A", 1.0, 1.0, day_before),
        make_fill(2, "BTC", "B", 1.0, -1.0, now + 60_000),
        make_fill(5, "BTC", "B", 1.0, 0.0, now - 40 * 86_400_000),  # an opening fill: never a close time
    ]
    b = make_state(2, [make_position(4, "BTC", -1.0), make_position(5, "BTC", 1.0)], fills=fills, time=now)
    _, second = run(a, b)
    closes = {r["close_time"].timestamp() * 1000 for r in second.closed.to_pylist()}
    possible = possible_close_times(validate(b).fills, now).tolist()
    assert second.closed.num_rows == 3 and closes == {day_before, now}
    assert possible == [day_before, now]  # the opening fill's day is not among them
    assert possible_close_times(None, now).tolist() == [now]
    assert possible_close_times(validate(b).fills.slice(1, 1), now).tolist() == [now]  # after the update: clipped
