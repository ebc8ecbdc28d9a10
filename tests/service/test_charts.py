"""service/charts.py: series reduced to a chart's pixel width, keeping each bucket's extremes."""

from __future__ import annotations

from hyperscope.service.charts import reduce


def rows(values):
    return [{"created_at": 1000 * i, "v": v} for i, v in enumerate(values)]


def test_short_series_pass_unchanged():
    chart = reduce(rows([1.0, None, 3.0]), ("v",), 10)
    assert chart.times == [0, 1000, 2000] and chart.values["v"] == [1.0, None, 3.0] and chart.rows == 3


def test_long_series_keep_every_buckets_minimum_and_maximum():
    values = [0.0] * 1000
    values[500] = 99.0  # a one-row spike must survive the reduction
    values[700] = -5.0
    chart = reduce(rows(values), ("v",), 50)
    assert len(chart.times) <= 100 and chart.rows == 1000
    assert max(chart.values["v"]) == 99.0 and min(chart.values["v"]) == -5.0
    assert chart.times == sorted(chart.times) and chart.times[0] == 0 and chart.times[-1] == 999_000


def test_an_empty_series_is_an_empty_chart():
    chart = reduce([], ("v",), 10)
    assert chart.times == [] and chart.values == {"v": []}
