"""The HTTP server: a socket bound before anything else starts, and uvicorn without its own signal handling.

Binding first means a port in use or an address this machine does not have is one line at start-up, not
a failure after the backfill. Signals are the runtime's (runtime.Signals): uvicorn's own handlers re-raise
SIGTERM after shutdown, which killed the process before the store was closed.
"""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Generator
from contextlib import contextmanager

import orjson
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hyperscope.api.errors import error_body
from hyperscope.errors import ConfigError


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); ConfigError in one line when that cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as e:
        sock.close()
        reason = "is already in use" if e.errno == 98 else f"cannot be used ({e.strerror})"
        raise ConfigError(
            f"cannot listen on {host}:{port}: the address {reason}; choose another --port or --host"
        ) from None
    sock.set_inheritable(True)
    return sock


class JSONErrorProtocol(HttpToolsProtocol):
    """Requests the HTTP parser rejects (a 100k-character URL, a malformed request line) get the API's JSON
    error shape rather than uvicorn's plain text.

    A connection must bring a whole request line and headers within `header_seconds` of opening, and start
    a new request within about twice that after its last one: uvicorn times out only idle kept-alive
    connections, so a client that connects and sends nothing, or trickles a byte at a time, would otherwise
    hold a connection forever. One timer per connection, re-armed when it fires (not per response, which
    would cost every request): it closes the connection when no new request got its headers in between."""

    header_seconds = 10.0
    _header_deadline: asyncio.TimerHandle | None = None

    def _arm_header_deadline(self, waiting_after: object) -> None:
        def expire() -> None:
            if self.transport.is_closing():
                return
            if self.cycle is waiting_after and (self.cycle is None or self.cycle.response_complete):
                self.transport.close()  # nothing new since the last look, and nothing being answered
            else:
                self._arm_header_deadline(self.cycle)

        self._header_deadline = self.loop.call_later(self.header_seconds, expire)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        body = orjson.dumps(error_body("bad_request", f"malformed HTTP request: {msg}"))
        head = (
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head + body)
        self.transport.close()


class Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the runtime owns SIGINT and SIGTERM


def make_server(application: FastAPI) -> Server:
    """A server for `application`: `server.run(sockets=[bind(...)])` serves until `server.should_exit`."""
    config = uvicorn.Config(
        application,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http=JSONErrorProtocol,
        timeout_graceful_shutdown=5,
    )
    # Everything built so far lives as long as the server: move it out of the collector's way, so that
    # full collections stay short and do not stall requests.
    gc.collect()
    gc.freeze()
    return Server(config)
