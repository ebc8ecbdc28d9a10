"""The upstream response examples, read from ../shared/spec/hypertracker at test time."""

from __future__ import annotations

import json
import re
from pathlib import Path

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "hypertracker"


def example(doc: str, route: str, marker: str = "Response Example") -> object:
    """The first JSON code block after `marker` that follows `route` in `doc`."""
    text = (SPEC / doc).read_text()
    at = text.index(f"`{route}`")
    at = text.index(marker, at)
    block = re.search(r"```\n(.*?)\n```", text[at:], re.S)
    assert block, route
    return json.loads(block.group(1))


# Shapes the spec gives as field lists (product-notes.md) rather than JSON examples; values show the type.
LISTED = {
    "segments": [{"id": 1, "name": "", "category": "", "criteria": {}, "emoji": ""}],
    "bias-history": {"segment": {"id": 1, "name": "", "category": "", "criteria": {}}, "nextCursor": None,
                     "positionRecencyTimeframe": "", "start": "", "end": "", "pageStart": "", "pageEnd": "",
                     "historySnapshotStructure": [""], "history": [[""]]},
    "heatmap": {"heatmap": [{"coin": "", "totalValue": 1.0, "totalLongValue": 1.0, "totalShortValue": 1.0,
                             "count": 1, "countLong": 1, "countShort": 1,
                             "segments": [{"segmentId": 1, "totalValue": 1.0, "totalLongValue": 1.0,
                                           "totalShortValue": 1.0, "count": 1, "countLong": 1, "countShort": 1,
                                           "bias": 1.0}]}]},
    "liquidation-risk": {"totalCount": 1, "items": [{"coin": "", "totalValue": 1.0, "riskValue": 1.0,
                                                     "percentRisk": 1.0}]},
}  # fmt: skip


def same_shape(ours: object, theirs: object, path: str = "$") -> list[str]:
    """Differences in keys and value types between our response and the upstream example."""
    if theirs is None or ours is None:
        return []
    if isinstance(theirs, dict):
        if not isinstance(ours, dict):
            return [f"{path}: expected object"]
        problems = [f"{path}.{k}: missing" for k in theirs if k not in ours]
        for k in theirs:
            if k in ours:
                problems += same_shape(ours[k], theirs[k], f"{path}.{k}")
        return problems
    if isinstance(theirs, list):
        if not isinstance(ours, list):
            return [f"{path}: expected array"]
        if theirs and ours:
            return same_shape(ours[0], theirs[0], f"{path}[0]")
        return []
    if isinstance(theirs, bool):
        return [] if isinstance(ours, bool) else [f"{path}: expected boolean"]
    if isinstance(theirs, int) and not isinstance(theirs, bool):
        return [] if isinstance(ours, int) and not isinstance(ours, bool) else [f"{path}: expected integer"]
    if isinstance(theirs, float):
        return [] if isinstance(ours, int | float) else [f"{path}: expected number"]
    if isinstance(theirs, str):
        return [] if isinstance(ours, str) else [f"{path}: expected string"]
    return []
