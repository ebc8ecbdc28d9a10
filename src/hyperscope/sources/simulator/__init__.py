"""A deterministic simulated Hyperliquid market: the embedded default source."""

from hyperscope.sources.simulator.engine import Simulator, SimConfig, preset

__all__ = ["SimConfig", "Simulator", "preset"]
