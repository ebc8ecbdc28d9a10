"""Time windows and opaque, signed, expiring cursors (semantics.md section 11).

A cursor is base64url(JSON of the last row's sort key, the query's fingerprint and an expiry) + "." +
base64url(HMAC-SHA256 of that). Editing or forging one, using it after it expires, or passing it with
another query is a 400, never a wrong page. Pages run newest first on (createdAt, id), so rows written
while a client pages (always newer) can never shift a later page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from hyperscope.errors import BadCursor
from hyperscope.signing import signed_body

MAX_LIMIT = 1000


@dataclass(frozen=True)
class Window:
    start: int
    end: int
    limit: int
    before: tuple[int, int] | None  # (createdAt ms, id) of the last row already returned


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fingerprint(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


class CursorCodec:
    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self.secret = secret
        self.ttl = ttl_seconds

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self.secret, body.encode(), hashlib.sha256).digest())

    def encode(self, created_at: int, row_id: int, query: str) -> str:
        payload = {"t": created_at, "i": row_id, "q": query, "x": int(time.time()) + self.ttl}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def encode_after(self, value: float | int, row_id: int, query: str) -> str:
        """A cursor after the row whose sort value is `value` and whose unique key is `row_id`."""
        payload = {"k": value, "s": row_id, "q": query, "x": int(time.time()) + self.ttl}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def decode_after(self, token: str, query: str) -> tuple[float | int, int]:
        payload = self._verified(token, query)
        value, row_id = payload.get("k"), payload.get("s")
        if any(isinstance(x, bool) for x in (value, row_id)) or not isinstance(value, int | float) or not isinstance(
                row_id, int):  # fmt: skip
            raise BadCursor("invalid cursor")
        return value, row_id

    def _verified(self, token: str, query: str) -> dict:
        body = signed_body(token, self._sign)
        if body is None:
            raise BadCursor("invalid or tampered cursor")
        try:
            payload = json.loads(_unb64(body))
            q, expires = payload["q"], int(payload["x"])
        except (ValueError, KeyError, TypeError) as e:
            raise BadCursor("invalid cursor") from e
        if expires < time.time():
            raise BadCursor("cursor expired; start again without it")
        if q != query:
            raise BadCursor("cursor belongs to a different query; keep the other parameters unchanged")
        return dict(payload)

    def decode(self, token: str, query: str) -> tuple[int, int]:
        payload = self._verified(token, query)
        try:
            return int(payload["t"]), int(payload["i"])
        except (ValueError, KeyError, TypeError) as e:
            raise BadCursor("invalid cursor") from e
