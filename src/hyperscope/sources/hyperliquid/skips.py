"""What a reader of a node's files skipped because it could not use it: counted by kind, with where the first
of each kind was, for one log line per snapshot and for /health. The format drifts: a reader skips and counts
what it cannot read, one record at a time, and rejects a whole file only when it cannot be one."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Skips:
    """Records skipped because they could not be read, by kind, with where the first of each kind was."""

    counts: Counter[str] = field(default_factory=Counter)
    first: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, where: str, n: int = 1) -> None:
        """Count `n` records of `kind`; `where` is the first's place (kept only for a kind's first)."""
        self.counts[kind] += n
        self.first.setdefault(kind, where)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def summary(self) -> str:
        """One line: each kind's count and its first example."""
        return "; ".join(f"{n} {kind} (first: {self.first[kind]})" for kind, n in sorted(self.counts.items()))

    def merge(self, other: Skips) -> None:
        for kind, n in other.counts.items():
            self.counts[kind] += n
            self.first.setdefault(kind, other.first[kind])
