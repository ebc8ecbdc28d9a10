"""The upstream docs' own Python examples, run unchanged but for the host and the token, against a live server
whose simulated market covers the dates the examples ask for (February 2026)."""

import re

import pytest

from tests.api import upstream

UPSTREAM_HOST = "https://ht-api.coinmarketman.com"
# fields that are whole numbers by definition; every other number in an example may be fractional here
INTEGERS = frozenset(
    {
        "positionCount",
        "pastPositionCount",
        "positionCountLong",
        "count",
        "countLong",
        "countShort",
        "countInProfit",
        "sizeSegmentId",
        "maxLeverage",
        "assetMaxLeverage",
        "szDecimals",
        "segments",
        "id",
        "crossLeverage",
        "isolatedLeverage",
    }
)


def examples():
    found = []
    for doc in ("positions-and-market-data.md", "stats-page-data.md"):
        text = (upstream.SPEC / doc).read_text()
        for block in re.finditer(r"```\n(import requests.*?)\n```", text, re.S):
            found.append(pytest.param(block.group(1), id=re.search(r"/api/external/([\w/-]+)", block.group(1))[1]))
    return found


def loosen(example, key=""):
    """The example with integers turned to floats where a value may be fractional (a size of 1500 is 1500.0)."""
    if isinstance(example, dict):
        return {k: loosen(v, k) for k, v in example.items()}
    if isinstance(example, list):
        return [loosen(v, key) for v in example]
    if isinstance(example, int) and not isinstance(example, bool) and key not in INTEGERS:
        return float(example)
    return example


def test_there_are_nine_examples():
    assert len(examples()) == 9


@pytest.mark.parametrize("code", examples())
def test_upstream_python_example_answers_200_with_data_of_the_documented_shape(february, code):
    world, http = february
    code = code.replace(UPSTREAM_HOST, str(http.base_url).rstrip("/")).replace("YOUR_API_TOKEN", world.key)
    code = code.replace("print(", "(lambda *a: None)(")
    namespace: dict = {}
    exec(compile(code, "<upstream example>", "exec"), namespace)  # noqa: S102 - the docs' own example
    response = namespace["response"]
    assert response.status_code == 200, response.text
    route = re.search(r"/api/external/[\w/-]+", code)[0]
    if "positions/open/coin" in route:
        assert response.headers["content-type"].startswith("text/csv")
        assert response.text.count("\n") > 10
        return
    body = response.json()
    assert body, route
    if route.endswith("/exports/coins/BTC/position-metrics"):  # the docs' example is cut short: check by hand
        assert body["coin"] == "BTC" and body["metrics"]["columns"][0] == "timestamp" and body["metrics"]["data"]
        assert all(len(row) == len(body["metrics"]["columns"]) for row in body["metrics"]["data"])
        return
    doc = (
        "stats-page-data.md"
        if any(r in route for r in ("general", "perp-volume", "total-wallets"))
        else ("positions-and-market-data.md")
    )
    templated = {
        "/api/external/position-metrics/coin/BTC": "/api/external/position-metrics/coin/{coin}",
        "/api/external/exports/coins/BTC/position-breakdown-by-size": (
            "/api/external/exports/coins/{coin}/position-breakdown-by-size"
        ),
    }.get(route, route)
    theirs = loosen(upstream.example(doc, templated))
    assert upstream.same_shape(body, theirs, nullable=upstream.NULLABLE) == []
    listed = next(iter(body.values())) if isinstance(body, dict) else body
    assert listed, f"{route} answered no data"
