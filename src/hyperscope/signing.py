"""What every signed token (download links, nextCursor, next_page_token) shares: its shape, checked before
anything else, and the comparison of signatures.

A token is `body.signature`, both base64url. A text of any other shape (non-ASCII, too long, no dot) is
refused here, before it reaches base64, JSON or `hmac.compare_digest` (which raises on non-ASCII text).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable

_TOKEN = re.compile(r"([A-Za-z0-9_-]{1,8192})\.([A-Za-z0-9_=-]{16,128})")


def token_parts(token: str) -> tuple[str, str] | None:
    """(body, signature) of a token of the right shape, else None."""
    match = _TOKEN.fullmatch(token)
    return (match.group(1), match.group(2)) if match else None


def signed_body(token: str, sign: Callable[[str], str]) -> str | None:
    """The token's body when its signature is `sign(body)` (compared in constant time), else None."""
    parts = token_parts(token)
    if parts is None:
        return None
    body, signature = parts
    return body if hmac.compare_digest(signature.encode(), sign(body).encode()) else None
