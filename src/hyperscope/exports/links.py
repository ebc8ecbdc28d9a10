"""Short-lived download links: the file id and an expiry, signed with HMAC-SHA256.

A link used after it expires, or one that was edited or forged, is refused with Forbidden (403), as
semantics.md section 11 asks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from hyperscope.errors import Forbidden
from hyperscope.signing import signed_body

LINK_TTL_SECONDS = 120


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class LinkSigner:
    def __init__(self, secret: bytes, ttl_seconds: int = LINK_TTL_SECONDS) -> None:
        self.secret = secret
        self.ttl = ttl_seconds

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self.secret, b"link|" + body.encode(), hashlib.sha256).digest())

    def issue(self, file_id: str, name: str) -> str:
        """A link to `file_id`, downloaded as `name`, valid for `ttl` seconds."""
        payload = {"f": file_id, "n": name, "x": int(time.time()) + self.ttl}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str) -> tuple[str, str]:
        """(file id, download name) of a valid, unexpired link."""
        body = signed_body(token, self._sign)
        if body is None:
            raise Forbidden("invalid download link")
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            expires = int(payload["x"])
        except (ValueError, KeyError, TypeError) as e:
            raise Forbidden("invalid download link") from e
        if expires < time.time():
            raise Forbidden("download link expired; request the export again")
        return str(payload["f"]), str(payload["n"])
