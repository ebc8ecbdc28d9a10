"""A deterministic simulated Hyperliquid market: the embedded default source."""

from hyperscope.sources.simulator.engine import SimConfig, Simulator, preset

__all__ = ["SimConfig", "Simulator", "preset"]
