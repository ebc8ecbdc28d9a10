"""The upstream response examples, from copies of the HyperTracker docs kept in tests/data/hypertracker."""

from __future__ import annotations

import json
import re
from pathlib import Path

SPEC = Path(__file__).resolve().parents[1] / "data" / "hypertracker"


def example(doc: str, route: str, marker: str = "Response Example") -> object:
    """The first JSON code block after `marker` that follows `route` in `doc`."""
    text = (SPEC / doc).read_text()
    at = text.index(f"`{route}`")
    at = text.index(marker, at)
    block = re.search(r"```\n(.*?)\n```", text[at:], re.S)
    assert block, route
    return json.loads(block.group(1))


# Keys that are null by definition at times: the last page's cursor, an empty page's bounds, a ratio over
# zero (bias with no open value, a bias-history row of a cohort without equity).
NULLABLE = frozenset({"nextCursor", "pageStart", "pageEnd", "bias", "history"})

# Shapes the spec gives as field lists (product-notes.md) rather than JSON examples; values show the type.
LISTED = {
    "segments": [{"id": 1, "name": "", "category": "", "criteria": {}, "emoji": ""}],
    "bias-history": {
        "segment": {"id": 1, "name": "", "category": "", "criteria": {}},
        "nextCursor": None,
        "positionRecencyTimeframe": "",
        "start": "",
        "end": "",
        "pageStart": "",
        "pageEnd": "",
        "historySnapshotStructure": [""],
        "history": [["", 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]],
    },
    "heatmap": {
        "heatmap": [
            {
                "coin": "",
                "totalValue": 1.0,
                "totalLongValue": 1.0,
                "totalShortValue": 1.0,
                "count": 1,
                "countLong": 1,
                "countShort": 1,
                "segments": [
                    {
                        "segmentId": 1,
                        "totalValue": 1.0,
                        "totalLongValue": 1.0,
                        "totalShortValue": 1.0,
                        "count": 1,
                        "countLong": 1,
                        "countShort": 1,
                        "bias": 1.0,
                    }
                ],
            }
        ]
    },
    "liquidation-risk": {
        "totalCount": 1,
        "items": [{"coin": "", "totalValue": 1.0, "riskValue": 1.0, "percentRisk": 1.0}],
    },
}


def same_shape(ours: object, theirs: object, path: str = "$", nullable: frozenset[str] = frozenset()) -> list[str]:
    """Differences in keys and value types between our response and the upstream example.

    A null is accepted only where upstream shows one, or at a key named in `nullable` (fields that are
    null by definition at times, e.g. nextCursor on the last page or bias with no open value).
    """
    if theirs is None:
        return []
    if ours is None:
        key = re.sub(r"\[\d+\]", "", path.rsplit(".", 1)[-1])
        return [] if key in nullable else [f"{path}: null where upstream has a value"]
    if isinstance(theirs, dict):
        if not isinstance(ours, dict):
            return [f"{path}: expected object"]
        problems = [f"{path}.{k}: missing" for k in theirs if k not in ours]
        for k in theirs:
            if k in ours:
                problems += same_shape(ours[k], theirs[k], f"{path}.{k}", nullable)
        return problems
    if isinstance(theirs, list):
        if not isinstance(ours, list):
            return [f"{path}: expected array"]
        # item i is checked against the example's item i, or its last one (rows of one kind, or a tuple)
        found = (
            [
                p
                for i, item in enumerate(ours)
                for p in same_shape(item, theirs[min(i, len(theirs) - 1)], f"{path}[{i}]", nullable)
            ]
            if theirs
            else []
        )
        return found[:5]
    if isinstance(theirs, bool):
        return [] if isinstance(ours, bool) else [f"{path}: expected boolean"]
    if isinstance(theirs, int) and not isinstance(theirs, bool):
        return [] if isinstance(ours, int) and not isinstance(ours, bool) else [f"{path}: expected integer"]
    if isinstance(theirs, float):
        return [] if isinstance(ours, int | float) else [f"{path}: expected number"]
    if isinstance(theirs, str):
        return [] if isinstance(ours, str) else [f"{path}: expected string"]
    return []
