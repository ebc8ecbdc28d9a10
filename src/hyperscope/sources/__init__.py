"""Everything that produces a state update: the embedded simulator now, Hyperliquid readers later."""
