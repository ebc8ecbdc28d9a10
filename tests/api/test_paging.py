"""Paging through a series while state updates arrive returns every row exactly once."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperscope.domain.timefmt import iso_ms


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limit=st.integers(1, 7), ingest_every=st.integers(1, 3), route=st.sampled_from(["general", "coin"]))
def test_paging_never_repeats_or_skips_while_ingesting(world, client, limit, ingest_every, route):
    start = iso_ms(world.updates[0].time)
    path = {"general": "/api/external/position-metrics/general", "coin": "/api/external/position-metrics/coin/ETH"}[
        route
    ]
    table = {"general": "metrics_general", "coin": "metrics_coin"}[route]
    where = "" if route == "general" else " AND coin = 'ETH'"
    first = client.get(f"{path}?start={start}&limit={limit}").json()
    newest = first["metrics"][0]["createdAt"]
    expected = world.store._dicts(
        f"SELECT id FROM {table} WHERE created_at >= {world.updates[0].time} AND created_at <= "
        f"(SELECT max(created_at) FROM {table}){where} ORDER BY created_at DESC, id DESC",
        [],
    )
    seen = [m["id"] for m in first["metrics"]]
    cursor, pages = first["nextCursor"], 0
    while cursor:
        pages += 1
        if pages % ingest_every == 0:
            world.step()  # a new state update lands mid-paging
        body = client.get(f"{path}?start={start}&limit={limit}&nextCursor={cursor}").json()
        seen += [m["id"] for m in body["metrics"]]
        assert all(m["createdAt"] <= newest for m in body["metrics"])
        cursor = body["nextCursor"]
    assert seen == [r["id"] for r in expected]
