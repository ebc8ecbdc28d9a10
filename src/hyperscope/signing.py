"""One Signer for every token hyperscope hands out: nextCursor, next_page_token and download links.

A token is `base64url(JSON payload).base64url(HMAC-SHA256(secret, purpose | body))`. The purpose keeps a token
of one kind from being accepted as another; the payload carries its expiry (`x`, epoch seconds). A text of any
other shape (non-ASCII, too long, no dot) is refused before it reaches base64, JSON or `hmac.compare_digest`
(which raises on non-ASCII text). Callers turn `BadToken` and `ExpiredToken` into their own family's error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from typing import Any

_TOKEN = re.compile(r"([A-Za-z0-9_-]{1,8192})\.([A-Za-z0-9_-]{43})")


class BadToken(Exception):
    """Not a token this signer issued for this purpose: malformed, edited or forged."""


class ExpiredToken(Exception):
    """A genuine token used after its expiry."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fingerprint(*parts: object) -> str:
    """A short digest that binds a token to the query it was issued for."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


class Signer:
    """Issues and opens the tokens of one purpose (`cursor`, `cm-page`, `link`), valid `ttl_seconds`."""

    def __init__(self, secret: bytes, purpose: str, ttl_seconds: int, *, clock: Callable[[], float] = time.time):
        self.secret = secret
        self.purpose = purpose
        self.ttl = ttl_seconds
        self.clock = clock

    def for_purpose(self, purpose: str, ttl_seconds: int | None = None) -> Signer:
        """A signer over the same secret and clock for tokens of another purpose (same ttl unless given)."""
        ttl = self.ttl if ttl_seconds is None else ttl_seconds
        return Signer(self.secret, purpose, ttl, clock=self.clock)

    def _signature(self, body: str) -> str:
        return _b64(hmac.new(self.secret, f"{self.purpose}|{body}".encode(), hashlib.sha256).digest())

    def sign(self, payload: dict[str, Any]) -> str:
        """A token carrying `payload` (JSON-able, without the key `x`) until `ttl` seconds from now."""
        body = _b64(json.dumps({**payload, "x": int(self.clock()) + self.ttl}, separators=(",", ":")).encode())
        return f"{body}.{self._signature(body)}"

    def open(self, token: str) -> dict[str, Any]:
        """The payload of a genuine, unexpired token of this purpose; BadToken or ExpiredToken otherwise."""
        match = _TOKEN.fullmatch(token) if isinstance(token, str) else None
        if match is None:
            raise BadToken("not a token")
        body, signature = match.groups()
        if not hmac.compare_digest(signature.encode(), self._signature(body).encode()):
            raise BadToken("signature does not match")
        try:
            payload = json.loads(_unb64(body))
            expires = int(payload.pop("x"))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise BadToken("unreadable payload") from e
        if expires < self.clock():
            raise ExpiredToken("expired")
        return dict(payload)
