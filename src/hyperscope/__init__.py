"""hyperscope: open, self-hostable analytics for Hyperliquid positioning."""

__version__ = "0.1.0"
