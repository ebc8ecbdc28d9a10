"""Pure functions: one tracked state update in, metric rows out (semantics.md sections 6 and 7)."""

from hyperscope.metrics.aggregates import GROUP_KEYS, MetricRows, compute

__all__ = ["GROUP_KEYS", "MetricRows", "compute"]
