"""Database URLs without their secrets: checked, redacted and scrubbed from every message, whatever their shape.

A PostgreSQL URL may carry a password in its user part (`postgresql://u:pw@host/db`) or as a parameter
(`?password=pw`), percent-encoded or not, and libpq quotes parts of a URL it cannot parse in its errors. So
no text that names or came from a connection attempt leaves this package without `scrub`, and a URL is
shown only as `redact` makes it. Neither ever raises, however malformed the URL.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote

_USERINFO = re.compile(r"^[a-z][a-z0-9+.-]*://(?P<user>[^/?#]*)@", re.I)  # to the last @ of the authority
_PASSWORD_PARAM = re.compile(r"(?P<name>(?:^|[?&;\s])password\s*=\s*)(?P<value>[^&;\s]*)", re.I)
MASK = "***"


def secrets_of(url: str) -> list[str]:
    """Every form of every secret `url` holds (raw and percent-decoded), longest first."""
    found: set[str] = set()
    m = _USERINFO.match(url)
    if m and ":" in m.group("user"):
        password = m.group("user").split(":", 1)[1]
        found.add(password)
        found.update(piece for piece in password.split("@") if len(piece) > 1)  # libpq stops at the first @
    for p in _PASSWORD_PARAM.finditer(url):
        found.add(p.group("value"))
    query = url.split("?", 1)[1] if "?" in url else ""
    try:
        found.update(v for k, v in parse_qsl(query, keep_blank_values=True) if k.strip().lower() == "password")
    except ValueError:
        pass
    found |= {unquote(s, errors="replace") for s in found}
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub(text: str, url: str | None) -> str:
    """`text` with every secret of `url` masked (and any `password=...` it quotes)."""
    for secret in secrets_of(url) if url else []:
        text = text.replace(secret, MASK)
    return _PASSWORD_PARAM.sub(lambda p: p.group("name") + MASK, text)


def redact(url: str) -> str:
    """The URL as it may be shown: its password (in the user part or as a parameter) masked."""
    m = _USERINFO.match(url)
    if m and ":" in m.group("user"):
        user = m.group("user").split(":", 1)[0]
        url = url[: m.start("user")] + f"{user}:{MASK}" + url[m.end("user") :]
    return scrub(url, None)


def check_postgres_url(url: str) -> None:
    """ValueError, in words that never quote the URL, when a PostgreSQL URL cannot be used as it is."""
    m = re.match(r"^postgres(?:ql)?://(?:(?P<user>[^/?#]*)@)?(?P<hostport>[^/?#@]*)", url)
    if m is None:
        raise ValueError("expected postgresql://user@host:5432/database")
    user = m.group("user") or ""
    if "@" in user:
        raise ValueError("the user or password has an '@'; write it as %40")
    if re.search(r"%(?![0-9A-Fa-f]{2})", user):
        raise ValueError("the user or password has a '%' that is not percent-encoding; write '%' as %25")
    hostport = m.group("hostport")
    port = hostport.rsplit("]", 1)[-1].rsplit(":", 1)[1] if ":" in hostport.rsplit("]", 1)[-1] else ""
    if port and not (port.isdigit() and 0 < int(port) < 65_536):
        raise ValueError("the port in the PostgreSQL URL is not a number from 1 to 65535")
    host = hostport.rsplit(":", 1)[0] if port or hostport.endswith(":") else hostport
    if not host and "host=" not in url.split("?", 1)[-1]:
        raise ValueError("a PostgreSQL URL needs a host: postgresql://user@host:5432/database")
