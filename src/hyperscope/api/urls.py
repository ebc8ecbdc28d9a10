"""The base of every absolute URL the API hands out (download links, Coin Metrics' `next_page_url`).

A request's `Host` header is the client's to choose, so it never decides on its own where a link points:
`public_url` when the operator set one (behind a proxy), else the request's host only when it is one of
`allowed_hosts` (by default the loopback names), else the address of the socket that took the request.
"""

from __future__ import annotations

from fastapi import Request

from hyperscope.api.state import api_state

LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _hostname(host: str) -> str:
    """The name part of a Host header value (`[::1]:8000` -> `::1`, `example.com:80` -> `example.com`)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def link_base(request: Request) -> str:
    """`scheme://host[:port]` (no trailing slash) that links in answers to `request` start with."""
    config = api_state(request).config
    if config.public_url:
        return str(config.public_url).rstrip("/")
    scheme = "https" if request.url.scheme == "https" else "http"
    host = request.headers.get("host", "")
    allowed = {h.lower() for h in (*LOOPBACK, *config.allowed_hosts)}
    if host and _hostname(host) in allowed and all(c.isalnum() or c in ".-:[]" for c in host):
        return f"{scheme}://{host}"
    server = request.scope.get("server") or ("127.0.0.1", 80)
    name = f"[{server[0]}]" if ":" in str(server[0]) else str(server[0])
    return f"{scheme}://{name}:{server[1]}"
