"""The short path for cached GETs (api/fastpath.py): the same answer as the full path, never past its state
update, its key's scope or its rate limit, and a bounded memory of request lines."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hyperscope.api.fastpath import FastPath
from tests.api.conftest import World

COINS = "/api/external/positions/coins"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("fast") / "store.duckdb", steps=2)
    with TestClient(w.app) as c:
        yield w, c
    w.keys.store.close()
    w.store.close()


def _headers(response):
    return [(k, v) for k, v in response.headers.items() if k not in ("x-ratelimit-remaining", "x-ratelimit-reset")]


def test_a_repeated_request_gets_the_full_paths_answer_byte_for_byte(fresh):
    w, c = fresh
    fast = w.app.state.hyperscope.fast
    cache = w.app.state.hyperscope.cache
    first = c.get(COINS, headers=w.headers())
    hits = cache.hits
    again = c.get(COINS, headers=w.headers())
    assert cache.hits == hits + 1 and len(fast) >= 1  # answered from the cache, before routing
    assert (again.status_code, _headers(again), again.content) == (first.status_code, _headers(first), first.content)
    assert int(again.headers["x-ratelimit-remaining"]) == int(first.headers["x-ratelimit-remaining"]) - 1
    head = c.head(COINS, headers=w.headers())
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(first.content))


def test_a_key_without_the_routes_scope_is_refused_after_another_key_cached_it(fresh):
    w, c = fresh
    token, _ = w.keys.create("orders-only-fast", ["orders"])
    assert c.get(COINS, headers=w.headers()).status_code == 200
    assert c.get(COINS, headers=w.headers()).status_code == 200
    refused = c.get(COINS, headers=w.headers(token))
    assert refused.status_code == 403 and "'positions' routes" in refused.text


def test_the_rate_limit_counts_short_path_requests(fresh):
    w, c = fresh
    token, _ = w.keys.create("three-a-minute", rate_limit=3)
    codes = [c.get(COINS, headers=w.headers(token)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_a_new_state_update_is_never_answered_with_the_previous_ones_body(fresh):
    w, c = fresh
    before = c.get(COINS, headers=w.headers())
    assert c.get(COINS, headers=w.headers()).content == before.content
    w.step()
    after = c.get(COINS, headers=w.headers())
    assert after.status_code == 200 and after.content != before.content
    assert c.get(COINS, headers=w.headers()).content == after.content


def test_an_unknown_parameter_is_refused_on_every_request_not_only_the_first(fresh):
    w, c = fresh
    for _ in range(2):
        assert c.get(COINS + "?junk=1", headers=w.headers()).status_code == 400


def test_the_remembered_request_lines_are_bounded():
    class Route:
        required_scope = "metrics"

    fast = FastPath(cache=None, max_entries=10)  # type: ignore[arg-type]
    for i in range(25):
        fast.remember({"path": COINS, "query_string": f"x={i}".encode(), "route": Route()}, 1, (COINS, str(i)))
        assert len(fast) <= 10
