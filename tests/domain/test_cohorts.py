import numpy as np
import pytest

from hyperscope.domain.buckets import size_bucket
from hyperscope.domain.cohorts import SEGMENTS, pnl_segment, size_segment


@pytest.mark.parametrize(
    ("equity", "segment"),
    [
        (-5, 16),
        (0, 16),
        (249.99, 16),
        (250, 1),
        (9_999.99, 1),
        (10_000, 2),
        (49_999, 2),
        (50_000, 3),
        (100_000, 4),
        (499_999, 4),
        (500_000, 5),
        (1_000_000, 6),
        (4_999_999, 6),
        (5_000_000, 7),
        (1e12, 7),
    ],
)
def test_size_segment_edges(equity, segment):
    assert size_segment(np.array([equity], dtype=float))[0] == segment


@pytest.mark.parametrize(
    ("pnl", "segment"),
    [
        (1e9, 8),
        (1_000_000, 8),
        (999_999, 9),
        (100_000, 9),
        (99_999, 10),
        (10_000, 10),
        (9_999, 11),
        (0.01, 11),
        (0, 12),
        (-0.01, 12),
        (-9_999, 12),
        (-10_000, 13),
        (-99_999, 13),
        (-100_000, 14),
        (-999_999, 14),
        (-1_000_000, 15),
        (-1e9, 15),
    ],
)
def test_pnl_segment_edges(pnl, segment):
    assert pnl_segment(np.array([pnl], dtype=float))[0] == segment


@pytest.mark.parametrize(
    ("value", "bucket"),
    [
        (0, 1),
        (999.99, 1),
        (1_000, 2),
        (9_999, 2),
        (10_000, 3),
        (25_000, 4),
        (50_000, 5),
        (100_000, 6),
        (250_000, 7),
        (500_000, 8),
        (1_000_000, 9),
        (2_499_999, 9),
        (2_500_000, 10),
        (1e10, 10),
    ],
)
def test_size_bucket_edges(value, bucket):
    assert size_bucket(np.array([value], dtype=float))[0] == bucket


def test_segments_cover_both_axes_once():
    assert sorted(s.id for s in SEGMENTS) == list(range(1, 17))
    assert sum(s.category == "size" for s in SEGMENTS) == 8
    assert SEGMENTS[0].criteria() == {"minPerpEquity": 0, "maxPerpEquity": 250}
