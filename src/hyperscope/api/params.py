"""Request parameter parsing: every failure is a BadParameter naming the parameter."""

from __future__ import annotations

from datetime import UTC, datetime

from hyperscope.domain.timefmt import now_ms, to_ms
from hyperscope.errors import BadParameter
from hyperscope.service.paging import MAX_LIMIT, CursorCodec, Window


def parse_time(value: str, parameter: str) -> int:
    """Any ISO 8601 form: a date alone is 00:00 UTC, no zone means UTC."""
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise BadParameter(parameter, f"expected an ISO 8601 date or time, got {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return to_ms(dt)


def parse_int(value: str | None, parameter: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadParameter(parameter, f"expected a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise BadParameter(parameter, f"must be between {low} and {high}, got {number}")
    return number


def window(
    start: str | None,
    end: str | None,
    limit: str | None,
    cursor: str | None,
    codec: CursorCodec,
    query: str,
    *,
    start_required: bool = True,
    default_start: int | None = None,
) -> Window:
    if start is None or start == "":
        if start_required:
            raise BadParameter("start", "required (ISO 8601, e.g. 2026-02-10T12:00:00Z)")
        start_ms = default_start if default_start is not None else 0
    else:
        start_ms = parse_time(start, "start")
    end_ms = parse_time(end, "end") if end else now_ms()
    if start_ms > end_ms:
        raise BadParameter("start", "is after end")
    size = parse_int(limit, "limit", MAX_LIMIT, 1, MAX_LIMIT)
    before = codec.decode(cursor, query) if cursor else None
    return Window(start=start_ms, end=end_ms, limit=size, before=before)
