"""API keys: random, shown once, stored only as sha256 hashes, compared in constant time.

A key reads `hs_<key id>_<secret>`; the key id is public (it names the key in lists and logs), the secret
is 256 random bits, so a fast hash is enough and no salt is needed. Keys live in their own file
(store/keys.py) that other processes change too: the manager looks for their changes at most once a
second, so a key revoked from the command line stops working within a second.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Protocol

from hyperscope.domain.timefmt import now_ms
from hyperscope.errors import BadParameter, MissingKey, NotFound, RateLimited, RetryLater, WrongKey
from hyperscope.store.keys import KeyStore, PostgresKeyStore

SCOPES = ("positions", "metrics", "segments", "exports", "orders", "leaderboards", "funding")
MAX_RATE_LIMIT = 1_000_000
RELOAD_SECONDS = 1.0
log = logging.getLogger("hyperscope.keys")
_KEY_ID = re.compile(r"^[0-9a-f]{8}$")


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    hash: str
    scopes: frozenset[str]
    rate_limit: int
    created_at: int
    revoked_at: int | None

    def allows(self, scope: str) -> bool:
        return "*" in self.scopes or scope in self.scopes


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class KeyManager:
    @property
    def counters(self) -> KeyStore | PostgresKeyStore:
        """Where the per-key minute counts live (the key store), for the rate limiter and the export builder."""
        return self.store

    def __init__(self, store: KeyStore | PostgresKeyStore, default_rate_limit: int = 600) -> None:
        self.store = store
        self.default_rate_limit = default_rate_limit
        self._keys: dict[str, ApiKey] = {}
        self._version = -1
        self._checked = 0.0
        self.unavailable: str | None = None  # why the key store cannot answer now (None: it does)
        self.reload()

    def refresh(self) -> None:
        """Reload the keys if another process changed them; asks the key store at most once a second while it
        answers, at every call while it does not. A key store that cannot answer is RetryLater (503) for every
        request, never an answer from the keys last read: a key revoked meanwhile must not keep working."""
        now = time.monotonic()
        if self.unavailable is None and now - self._checked < RELOAD_SECONDS:
            return
        for attempt in (1, 2):  # a connection found dead is replaced at once: one more try
            try:
                if self.store.version() != self._version:
                    self.reload()
                break
            except RetryLater as e:
                if attempt == 2:
                    if self.unavailable is None:
                        log.warning("the key store cannot answer (%s): requests get 503 until it does", e.log_text)
                    self.unavailable = e.message
                    raise
        if self.unavailable is not None:
            log.warning("the key store answers again")
            self.unavailable = None
        self._checked = now

    def reload(self) -> None:
        self._version = self.store.version()
        self._keys = {
            row["key_id"]: ApiKey(
                key_id=row["key_id"],
                name=row["name"],
                hash=row["hash"],
                scopes=frozenset(row["scopes"].split(",")),
                rate_limit=row["rate_limit"],
                created_at=row["created_at"],
                revoked_at=row["revoked_at"],
            )
            for row in self.store.rows()
        }

    def create(
        self, name: str = "default", scopes: list[str] | None = None, rate_limit: int | None = None
    ) -> tuple[str, ApiKey]:
        """Create a key; returns (the plaintext key, shown only now, and its record)."""
        wanted = scopes or ["*"]
        unknown = [s for s in wanted if s != "*" and s not in SCOPES]
        if unknown:
            raise BadParameter("scope", f"unknown scope(s) {', '.join(unknown)}; expected * or {', '.join(SCOPES)}")
        limit = self.default_rate_limit if rate_limit is None else rate_limit
        if not 1 <= limit <= MAX_RATE_LIMIT:
            raise BadParameter("rate-limit", f"must be 1 to {MAX_RATE_LIMIT:,} requests per minute, got {limit}")
        if not name or len(name) > 100:
            raise BadParameter("name", "must be 1 to 100 characters")
        key_id = secrets.token_hex(4)
        token = f"hs_{key_id}_{secrets.token_urlsafe(32)}"
        row = {
            "key_id": key_id,
            "name": name,
            "hash": _digest(token),
            "scopes": ",".join(sorted(wanted)),
            "rate_limit": limit,
            "created_at": now_ms(),
        }
        self.store.insert([row])
        self.reload()
        return token, self._keys[key_id]

    def active(self, key_id: str) -> ApiKey | None:
        """The key with this id while it is active (None once revoked or unknown): what a signed-in session
        checks at every request, so revoking a key ends its sessions."""
        self.refresh()
        key = self._keys.get(key_id)
        return key if key is not None and key.revoked_at is None else None

    def list(self) -> list[ApiKey]:
        return sorted(self._keys.values(), key=lambda k: (k.created_at, k.key_id))

    def revoke(self, key_id: str) -> ApiKey:
        self.reload()
        if key_id not in self._keys:
            raise NotFound(f"no API key with id {key_id!r}; `hyperscope keys list` shows the ids")
        self.store.revoke(key_id, now_ms())
        self.reload()
        return self._keys[key_id]

    def active_count(self) -> int:
        return sum(1 for k in self._keys.values() if k.revoked_at is None)

    def ever_created(self) -> int:
        return self.store.count()

    def authenticate(self, token: str | None) -> ApiKey:
        """The active key `token` (`hs_<id>_<secret>`) names: MissingKey without one, WrongKey for a malformed,
        unknown or revoked one."""
        if not token:
            raise MissingKey("no API key given")
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "hs" or not _KEY_ID.match(parts[1]):
            raise WrongKey("malformed API key")
        self.refresh()
        key = self._keys.get(parts[1])
        presented = _digest(token)
        if key is None or not hmac.compare_digest(presented, key.hash):
            raise WrongKey("unknown API key")
        if key.revoked_at is not None:
            raise WrongKey("this API key has been revoked")
        return key


class UsageStore(Protocol):
    def take_usage(self, kind: str, key_id: str, minute: int, want: int, limit: int) -> tuple[int, int]: ...


class MinuteWindows:
    """Counts per key in fixed one-minute windows, for request rate limits and export-building limits.

    With a shared `usage` store, a limit holds exactly across every process serving the same keys: a process
    admits a request only with a token it took from the shared count, which never passes the limit (the store
    grants atomically). To spare the store a write per request, a process takes a few tokens at once while
    the key is far from its limit (a sixteenth of what is left, at most 1,000) and one at a time near it, so
    the tokens a process holds unused when the limit is reached are at most a handful. A key refused once in
    a minute stays refused here until the minute ends, without asking the store again.
    If the shared store cannot answer, the request is RetryLater (503, logged once per outage): a limit that
    cannot be checked is never guessed, and with PostgreSQL the keys cannot be read either.
    Holds only the current minute's keys. Not locked: each user calls it from one thread or under its lock."""

    MAX_LEASE = 1000

    def __init__(self, usage: UsageStore | None = None, kind: str = "requests") -> None:
        self.usage = usage
        self.kind = kind
        self._minute = 0
        self._held: dict[str, int] = {}  # tokens taken from the shared count, not used yet
        self._total: dict[str, int] = {}  # the shared count at this process's last take
        self._refused: set[str] = set()
        self._local: dict[str, int] = {}  # counts when there is no shared store
        self._unreachable = False  # the shared store did not answer the last take

    def _take(self, key_id: str, limit: int) -> int:
        """Tokens granted to this process for `key_id` (0: the limit is reached); RetryLater if the store
        cannot answer."""
        assert self.usage is not None
        want = max(1, min(self.MAX_LEASE, (limit - self._total.get(key_id, 0)) // 16 - 4))
        try:
            granted, total = self.usage.take_usage(self.kind, key_id, self._minute, want, limit)
        except RetryLater as e:
            if not self._unreachable:  # once per outage, not once per request
                log.warning("shared %s counts unavailable: answering 503 until they are (%s)", self.kind, e.message)
            self._unreachable = True
            raise
        if self._unreachable:
            log.warning("shared %s counts available again", self.kind)
            self._unreachable = False
        self._total[key_id] = total
        return granted

    def hit(self, key_id: str, limit: int, refusal: str) -> tuple[int, int, int]:
        """Count one; returns (limit, remaining, seconds until reset), or raises RateLimited with `refusal`
        (formatted with `limit` and `retry`) when the key already used its `limit` this minute."""
        now = time.time()
        minute = int(now // 60)
        reset = max(1, math.ceil((minute + 1) * 60 - now))
        if minute != self._minute:  # a new minute: every older window is over
            self._minute = minute
            self._held, self._total, self._local = {}, {}, {}
            self._refused = set()
        if key_id in self._refused:
            raise RateLimited(refusal.format(limit=limit, retry=reset), retry_after=reset)
        held = self._held.get(key_id, 0)
        if held == 0 and self.usage is not None:
            held = self._take(key_id, limit)
        if held > 0:
            self._held[key_id] = held - 1
            return limit, max(0, limit - self._total.get(key_id, 0) + held - 1), reset
        if self.usage is not None:
            self._refused.add(key_id)
            raise RateLimited(refusal.format(limit=limit, retry=reset), retry_after=reset)
        count = self._local.get(key_id, 0)  # no shared store: this process is the only one
        if count >= limit:
            raise RateLimited(refusal.format(limit=limit, retry=reset), retry_after=reset)
        self._local[key_id] = count + 1
        return limit, limit - count - 1, reset
