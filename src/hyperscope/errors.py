"""The hyperscope error tree, split by what the caller should do about it.

    HyperscopeError                  base; `status` is the HTTP status, `type` the API error type
    ├── InputError (400)             fix the input
    │   ├── BadParameter             a request parameter is missing or malformed (names it)
    │   ├── BadCursor                a paging cursor was forged, edited, expired or reused on another query
    │   └── InvalidStateUpdate       a state update breaks the contract; it is rejected whole
    ├── NotFound (404)               unknown coin, segment, bucket, key or file
    ├── AuthError (401)              an API key that cannot be used
    │   ├── MissingKey               none came with the request
    │   └── WrongKey                 malformed, unknown or revoked
    ├── Forbidden (403)              a valid key without access to this resource, or an expired link
    ├── RateLimited (429)            slow down; `retry_after` seconds
    ├── RetryLater (503)             a source or the store is busy or unreachable; try again
    │   ├── SourceUnavailable
    │   └── StoreUnavailable         the store failed an operation that may work later (disk full, I/O)
    └── ConfigError (500)            needs an operator: bad settings, unreadable store
        └── StoreFailed (503)        the store is broken (corrupt, invalidated); a restart or repair is needed

`message` is safe to show to API clients (no file paths, no internals); `detail`, when set, is the full
text for the logs.

Third-party exceptions (duckdb, httpx, ...) are translated into these at exactly one boundary each,
with ``raise Ours(...) from e``; routes and metrics code never see them.
"""

from __future__ import annotations


class HyperscopeError(Exception):
    status: int = 500
    type: str = "internal_error"

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    @property
    def log_text(self) -> str:
        return f"{self.message}: {self.detail}" if self.detail else self.message


class InputError(HyperscopeError):
    status = 400
    type = "bad_request"


class BadParameter(InputError):
    type = "bad_parameter"

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class BadCursor(InputError):
    type = "bad_cursor"


class InvalidStateUpdate(InputError):
    type = "invalid_state_update"


class NotFound(HyperscopeError):
    status = 404
    type = "not_found"


class AuthError(HyperscopeError):
    status = 401
    type = "unauthorized"


class MissingKey(AuthError):
    """No key came with the request."""


class WrongKey(AuthError):
    """A key came, but it is malformed, unknown or revoked."""


class Forbidden(HyperscopeError):
    status = 403
    type = "forbidden"


class RateLimited(HyperscopeError):
    status = 429
    type = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryLater(HyperscopeError):
    status = 503
    type = "unavailable"


class SourceUnavailable(RetryLater):
    type = "source_unavailable"


class StoreUnavailable(RetryLater):
    type = "store_unavailable"


class ConfigError(HyperscopeError):
    status = 500
    type = "config_error"


class StoreFailed(ConfigError):
    status = 503
    type = "store_failed"
