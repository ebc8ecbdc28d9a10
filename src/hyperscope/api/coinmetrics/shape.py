"""Coin Metrics conventions for values, times, errors and pages (conventions.md section 2)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hyperscope.errors import BadParameter, HyperscopeError, MissingKey, RateLimited
from hyperscope.signing import BadToken, ExpiredToken, Signer, fingerprint

MAX_PAGE_SIZE = 10_000
_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?)?Z?$|^(\d{4})(\d{2})(\d{2})$")


class CMBadParameter(BadParameter):
    """A 400 in Coin Metrics' words: "Bad parameter 'name'. <what>"."""

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(parameter, problem)
        self.message = f"Bad parameter '{parameter}'. {problem}"


def unsupported(parameter: str, value: str, what: str = "Value") -> CMBadParameter:
    return CMBadParameter(parameter, f"{what} '{value}' is not supported.")


def error_body(error: HyperscopeError) -> dict[str, Any]:
    """{"error": {"type", "message"}} with Coin Metrics' types."""
    kind = error.type
    if error.status == 401:
        kind = "unauthorized" if isinstance(error, MissingKey) else "wrong_credentials"
        message = (
            "Requested resource requires authorization."
            if kind == "unauthorized"
            else "Supplied credentials are not valid."
        )
        return {"error": {"type": kind, "message": message}}
    if isinstance(error, BadParameter):
        kind = "bad_parameter"
    elif isinstance(error, RateLimited):
        kind = "too_many_requests"
    return {"error": {"type": kind, "message": error.message}}


def number(x: float) -> str | None:
    """A value as Coin Metrics writes it: a decimal string (never an exponent), None for no value."""
    if math.isnan(x):
        return None
    text = repr(float(significant([x])[0]))
    if "e" not in text and "E" not in text:
        return text[:-2] if text.endswith(".0") else text
    mantissa, _, exponent = text.partition("e")
    sign = "-" if mantissa.startswith("-") else ""
    digits = mantissa.lstrip("-").replace(".", "")
    point = mantissa.lstrip("-").find(".")
    point = len(mantissa.lstrip("-")) if point < 0 else point
    shift = point + int(exponent)
    if shift <= 0:
        body = "0." + "0" * (-shift) + digits.rstrip("0")
    elif shift >= len(digits):
        body = digits + "0" * (shift - len(digits))
    else:
        body = digits[:shift] + "." + digits[shift:].rstrip("0")
    return sign + body.rstrip(".")


def time_out(ms: int) -> str:
    """2026-11-22T01:00:00.000000000Z"""
    seconds, millis = divmod(int(ms), 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}000000Z"


def time_in(value: str, parameter: str, zone: str | None) -> int:
    """Epoch ms of one of Coin Metrics' six input forms; no zone given means `timezone` (default UTC)."""
    m = _TIME.match(value.strip())
    if not m:
        raise CMBadParameter(
            parameter,
            f"Value '{value}' is not a supported time: use 2006-01-20T00:00:00Z, "
            "2006-01-20T00:00:00.000Z, 2006-01-20T00:00:00.123456Z, "
            "2006-01-20T00:00:00.123456789Z, 2006-01-20 or 20060120.",
        )
    if m.group(8):
        year, month, day, hh, mm, ss, frac = m.group(8), m.group(9), m.group(10), "0", "0", "0", None
    else:
        year, month, day, hh, mm, ss, frac = (m.group(i) or "0" for i in range(1, 8))
        frac = m.group(7)
    try:  # a folder ("Europe"), a too-long name, odd characters: all just an unknown zone
        tz = ZoneInfo(zone) if zone else UTC
    except (ZoneInfoNotFoundError, ValueError, OSError, UnicodeError):
        raise unsupported("timezone", (zone or "")[:64]) from None
    try:
        dt = datetime(
            int(year), int(month), int(day), int(hh), int(mm), int(ss), int((frac or "0").ljust(6, "0")[:6]), tzinfo=tz
        )
    except ValueError:
        raise CMBadParameter(parameter, f"Value '{value}' is not a valid date or time.") from None
    return int(dt.timestamp() * 1000)


def parse_bool(value: str | None, parameter: str, default: bool) -> bool:
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise CMBadParameter(parameter, f"Value '{value}' is not supported; use true or false.")
    return value.lower() == "true"


def parse_int(value: str | None, parameter: str, default: int | None, low: int, high: int) -> int | None:
    if value is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", value) or not low <= int(value) <= high:
        raise CMBadParameter(parameter, f"Value '{value}' is not supported; use a whole number {low}-{high}.")
    return int(value)


def parse_choice(value: str | None, parameter: str, choices: tuple[str, ...], default: str) -> str:
    if value is None:
        return default
    if value not in choices:
        raise CMBadParameter(parameter, f"Value '{value}' is not supported; use one of {', '.join(choices)}.")
    return value


def parse_list(value: str | None, parameter: str) -> list[str]:
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    if not items:
        raise CMBadParameter(parameter, "Value is required.")
    return list(dict.fromkeys(items))


class PageTokens:
    """Opaque next_page_token values: the last row's sort key, bound to the query (purpose `cm-page`)."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def encode(self, key: tuple[str, int], query: str) -> str:
        return self.signer.sign({"e": key[0], "t": key[1], "q": fingerprint(query)})

    def decode(self, token: str, query: str) -> tuple[str, int]:
        try:
            payload = self.signer.open(token)
            entity, time, bound = str(payload["e"]), int(payload["t"]), payload["q"]
        except ExpiredToken:
            raise CMBadParameter("next_page_token", "Value has expired; start again without it.") from None
        except (BadToken, KeyError, TypeError, ValueError):
            raise CMBadParameter("next_page_token", "Value is not a valid page token.") from None
        if bound != fingerprint(query):
            raise CMBadParameter("next_page_token", "Value belongs to a different query; keep the other parameters.")
        return entity, time


SIGNIFICANT_DIGITS = 15  # what a double holds for certain: the float noise of arithmetic lies past them


def significant(values: Any) -> Any:
    """Values rounded to 15 significant digits, as the doubles nearest those decimals: 8 x 0.0000125 computed in
    binary is 0.00009999999999999999, and prints as the 0.0001 it stands for; a rate parsed from an upstream
    decimal string (fewer digits) comes back unchanged."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values) & (values != 0)
    if not finite.any():
        return values
    out = values.copy()
    x = values[finite]
    digits = SIGNIFICANT_DIGITS - 1 - np.floor(np.log10(np.abs(x))).astype(np.int64)
    up = digits >= 0
    scale = 10.0 ** np.abs(digits)  # exact up to 10^22: one rounding in, one out
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = np.where(up, np.rint(x * scale) / scale, np.rint(x / scale) * scale)
    inexact = np.abs(digits) > 22  # 10^d is no double: the rare tiny or huge value goes through text
    if inexact.any():
        rounded[inexact] = [float(f"{v:.{SIGNIFICANT_DIGITS}g}") for v in x[inexact].tolist()]
    out[finite] = np.where(np.isfinite(rounded), rounded, x)
    return out


def number_array(values: Any) -> Any:
    """`number` over a float64 array, as an Arrow string array with nulls for NaN: Arrow writes the shortest
    round-trip digits positionally for 1e-7 <= |x| < 1e21; the rare rest goes through `number`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    values = significant(np.asarray(values, dtype=np.float64))
    text = pc.cast(pa.array(values, mask=np.isnan(values)), pa.string())
    odd = pc.match_substring(text, "e").to_numpy(zero_copy_only=False)
    odd = np.asarray(odd, dtype=bool) & ~np.isnan(values)
    if odd.any():
        fixed = text.to_pylist()
        for i in np.nonzero(odd)[0]:
            fixed[i] = number(float(values[i]))
        text = pa.array(fixed, pa.string())
    return text


def numbers(values: Any) -> list[str | None]:
    """`number` over an array, as a list."""
    return number_array(values).to_pylist()  # type: ignore[no-any-return]


def times(ms: Any) -> Any:
    """`time_out` over an int64 array of epoch ms, vectorised."""
    import numpy as np
    import pyarrow as pa

    distinct, inverse = np.unique(np.asarray(ms, dtype=np.int64), return_inverse=True)  # hours repeat a lot
    text = np.datetime_as_string(distinct.astype("datetime64[ms]"), unit="ms")
    return pa.array(np.char.add(text.astype(str), "000000Z")).take(pa.array(inverse.ravel()))
