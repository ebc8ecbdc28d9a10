"""Time windows and opaque, signed, expiring cursors (semantics.md section 11).

A cursor is a token of `signing.Signer` (purpose `cursor`) holding the last row's sort key and the query's
fingerprint. Editing or forging one, using it after it expires, or passing it with
another query is a 400, never a wrong page. Pages run newest first on (createdAt, id), so rows written
while a client pages (always newer) can never shift a later page.
"""

from __future__ import annotations

from dataclasses import dataclass

from hyperscope.errors import BadCursor
from hyperscope.signing import BadToken, ExpiredToken, Signer

MAX_LIMIT = 1000


@dataclass(frozen=True)
class Window:
    start: int
    end: int
    limit: int
    before: tuple[int, int] | None  # (createdAt ms, id) of the last row already returned


class CursorCodec:
    """nextCursor values: the last row's sort key, bound to the query's fingerprint (`q`)."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def encode(self, created_at: int, row_id: int, query: str) -> str:
        return self.signer.sign({"t": created_at, "i": row_id, "q": query})

    def encode_after(self, value: float | int, row_id: int, query: str) -> str:
        """A cursor after the row whose sort value is `value` and whose unique key is `row_id`."""
        return self.signer.sign({"k": value, "s": row_id, "q": query})

    def decode_after(self, token: str, query: str) -> tuple[float | int, int]:
        payload = self._verified(token, query)
        value, row_id = payload.get("k"), payload.get("s")
        if isinstance(value, bool) or isinstance(row_id, bool) or not isinstance(value, int | float):
            raise BadCursor("invalid cursor")
        if not isinstance(row_id, int):
            raise BadCursor("invalid cursor")
        return value, row_id

    def _verified(self, token: str, query: str) -> dict:
        try:
            payload = self.signer.open(token)
        except ExpiredToken:
            raise BadCursor("cursor expired; start again without it") from None
        except BadToken:
            raise BadCursor("invalid or tampered cursor") from None
        if payload.get("q") != query:
            raise BadCursor("cursor belongs to a different query; keep the other parameters unchanged")
        return payload

    def decode(self, token: str, query: str) -> tuple[int, int]:
        payload = self._verified(token, query)
        try:
            return int(payload["t"]), int(payload["i"])
        except (ValueError, KeyError, TypeError) as e:
            raise BadCursor("invalid cursor") from e
