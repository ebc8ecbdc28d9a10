"""Dashboard sign-in: a signed, expiring, HttpOnly, SameSite=Strict session cookie naming an API key.

A session holds only the key's id, signed with the process's secret (`signing.Signer`, purpose `session`).
Every request checks that the key is still active (`KeyManager.active`), so revoking a key ends its
sessions within a second. A sign-in link (`/dashboard/sign-in?link=...`, printed by `hyperscope run` next
to a new key) is a token of purpose `sign-in` valid for 10 minutes and accepted once per process.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from hyperscope.service.keys import ApiKey, KeyManager
from hyperscope.signing import BadToken, ExpiredToken, Signer

COOKIE = "hs_session"
SESSION_SECONDS = 12 * 3600
LINK_SECONDS = 600
SCOPE = "metrics"  # what a key needs to see the dashboard; pages of positions also need `positions`


def sign_in_link(secret: bytes, key_id: str) -> str:
    """The query string of a one-time sign-in link for `key_id` (valid LINK_SECONDS)."""
    token = Signer(secret, "sign-in", LINK_SECONDS).sign({"k": key_id, "n": secrets.token_hex(8)})
    return f"/dashboard/sign-in?link={token}"


class Sessions:
    def __init__(self, secret: bytes, keys: KeyManager, clock: Callable[[], float] = time.time) -> None:
        self.cookies = Signer(secret, "session", SESSION_SECONDS, clock=clock)
        self.links = Signer(secret, "sign-in", LINK_SECONDS, clock=clock)
        self.keys = keys
        self._used: OrderedDict[str, float] = OrderedDict()  # link nonces already taken (bounded below)
        self._lock = threading.Lock()

    def cookie_for(self, key: ApiKey) -> str:
        return self.cookies.sign({"k": key.key_id})

    def key_of(self, cookie: str | None) -> ApiKey | None:
        """The active key a session cookie names, or None (absent, forged, expired or revoked)."""
        if not cookie:
            return None
        try:
            key_id = self.cookies.open(cookie).get("k")
        except (BadToken, ExpiredToken):
            return None
        return self.keys.active(key_id) if isinstance(key_id, str) else None

    def redeem(self, link: str) -> ApiKey | None:
        """The active key of a sign-in link used for the first time, else None."""
        try:
            payload = self.links.open(link)
        except (BadToken, ExpiredToken):
            return None
        key_id, nonce = payload.get("k"), payload.get("n")
        if not isinstance(key_id, str) or not isinstance(nonce, str):
            return None
        now = time.monotonic()
        with self._lock:
            while self._used and next(iter(self._used.values())) < now:  # forget nonces past their link's life
                self._used.popitem(last=False)
            if nonce in self._used or len(self._used) >= 10_000:
                return None
            self._used[nonce] = now + LINK_SECONDS
        return self.keys.active(key_id)
