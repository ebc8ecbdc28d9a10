"""Request parameter parsing: every failure is a BadParameter naming the parameter."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from hyperscope.domain.timefmt import now_ms, to_ms
from hyperscope.errors import BadCursor, BadParameter, NotFound
from hyperscope.service.paging import MAX_LIMIT, CursorCodec, Window

# An id in a path is a whole number written the one canonical way: ASCII digits, no sign, no leading zero,
# no underscore, no space ("+1", "01", "1_0", " 1" and other scripts' digits are not ids).
ID_PATTERN = "^[1-9][0-9]{0,8}$"
_ID = re.compile(ID_PATTERN)
# What `parse_time` accepts, as the OpenAPI document states it (a date, optionally a time and a zone).
TIME_PATTERN = (
    r"^([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?)?$"
)
_TIME = re.compile(TIME_PATTERN)
EARLIEST_MS = 0  # 1970-01-01T00:00:00Z
LATEST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def path_id(text: str, what: str, hint: str) -> int:
    """The id in a path segment, parsed strictly; NotFound (404) for anything that is not one."""
    if not _ID.match(text):
        raise NotFound(f"unknown {what} {text!r}; {hint}")
    return int(text)


def parse_time(value: str, parameter: str) -> int:
    """An ISO 8601 date or time of the documented form (TIME_PATTERN): a date alone is 00:00 UTC, no zone
    means UTC; a day the month does not have (2026-02-30) is a 400 too."""
    text = value.strip()
    if not _TIME.match(text):
        raise BadParameter(
            parameter, f"expected an ISO 8601 date or time such as 2026-02-10 or 2026-02-10T12:00:00Z, got {value!r}"
        )
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise BadParameter(parameter, f"expected an ISO 8601 date or time, got {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        ms = to_ms(dt)
    except (OverflowError, ValueError):
        ms = -1
    if not EARLIEST_MS <= ms <= LATEST_MS:
        raise BadParameter(parameter, f"must be between 1970-01-01 and 9999-12-31 (UTC), got {value!r}")
    return ms


def parse_int(value: str | None, parameter: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if not re.fullmatch(r"-?[0-9]{1,18}", value):
        raise BadParameter(parameter, f"expected a whole number, got {value!r}")
    number = int(value)
    if not low <= number <= high:
        raise BadParameter(parameter, f"must be between {low} and {high}, got {number}")
    return number


def cursor_of(decode: Any, token: str, query: str) -> Any:
    """A `nextCursor` decoded by the service's codec; its complaint named after the parameter."""
    try:
        return decode(token, query)
    except BadCursor as e:
        raise BadCursor(f"nextCursor: {e.message}") from None


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
    before = cursor_of(codec.decode, cursor, query) if cursor else None
    return Window(start=start_ms, end=end_ms, limit=size, before=before)


_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
MAX_ADDRESSES = 1000


def parse_bool(value: str | None, parameter: str) -> bool | None:
    """The strings "true" and "false" (as upstream takes them); None when absent."""
    if value is None:
        return None
    text = value.strip().lower()
    if text not in ("true", "false"):
        raise BadParameter(parameter, f"expected true or false, got {value!r}")
    return text == "true"


def parse_choice(value: str | None, parameter: str, choices: tuple[str, ...], default: str) -> str:
    if value is None:
        return default
    for choice in choices:
        if value.strip().lower() == choice.lower():
            return choice
    raise BadParameter(parameter, f"expected one of {', '.join(choices)}, got {value!r}")


def parse_addresses(values: list[str], parameter: str = "address") -> tuple[str, ...] | None:
    """Wallet addresses, repeated (`address=a&address=b`) or comma-separated, lowercased; None when absent."""
    found: list[str] = []
    for value in values:
        for part in value.split(","):
            text = part.strip()
            if not _ADDRESS.match(text):
                raise BadParameter(parameter, f"expected a 0x-prefixed 40-hex-digit address, got {part!r}")
            found.append(text.lower())
    if len(found) > MAX_ADDRESSES:
        raise BadParameter(parameter, f"at most {MAX_ADDRESSES} addresses per request, got {len(found)}")
    return tuple(dict.fromkeys(found)) or None
