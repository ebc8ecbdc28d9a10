"""`hyperscope ...`: thin commands over the library (entry: the app and how commands end; options: flags made
from the Settings fields; lifecycle: the build/signals/catch-up/finish sequence; commands and keys)."""

from hyperscope.cli import commands, keys
from hyperscope.cli.entry import app, main

__all__ = ["app", "commands", "keys", "main"]
