"""Position lifecycles (open, resize, flip, close, liquidation; ids and times) and wallet profiles."""

from hyperscope.tracking.lifecycle import OPEN_POSITION_SCHEMA, Tracked, track
from hyperscope.tracking.profiles import PROFILE_SCHEMA, build_profiles, changed_rows

__all__ = ["OPEN_POSITION_SCHEMA", "PROFILE_SCHEMA", "Tracked", "build_profiles", "changed_rows", "track"]
