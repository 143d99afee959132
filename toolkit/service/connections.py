"""The service's connection layer: uvicorn's h11 protocol with read deadlines, a connection cap and JSON errors.

uvicorn bounds idle keep-alive connections but not a client that is slow while sending: partial headers, a
half body or one byte every few seconds would hold a connection (and its memory) for as long as the client
likes. Here every request has two deadlines: its headers must be complete within `header_timeout` seconds of the
connection opening (or of the previous answer), and its body within `body_timeout` seconds of its headers;
past one, the client gets 408 (when nothing was answered yet) and the connection is closed. Beyond
`max_connections` open connections per process a new one gets 503 + Retry-After and is closed. The HTTP parser's
own errors (a malformed request line, headers over the size limit) are answered in the service's JSON error shape.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)

LIMITS_ATTRIBUTE = "duet_connection_limits"  # the uvicorn.Config attribute the protocol reads its limits from


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take to send a request, and how many connections one process keeps open."""

    header_timeout: float = 10.0  # seconds from connection (or the previous answer) to the request's last header
    body_timeout: float = 30.0  # seconds from the request's headers to its body's last byte
    max_connections: int = 1024  # open connections per process; beyond it 503 + Retry-After


def raw_error(status: int, reason: str, code: str, message: str, extra_headers: str = "") -> bytes:
    """A complete HTTP/1.1 error answer in the service's JSON shape, closing the connection."""
    body = json.dumps({"error": code, "message": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"connection: close\r\n{extra_headers}\r\n")
    return head.encode("latin-1") + body


class BoundedH11Protocol(H11Protocol):
    """uvicorn's H11Protocol plus the deadlines and the cap of ConnectionLimits (read from the uvicorn config)."""

    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: ConnectionLimits = getattr(config, LIMITS_ATTRIBUTE, None) or ConnectionLimits()
        self.deadline: asyncio.TimerHandle | None = None
        self.waiting_for = ""  # "headers" or "body" while a deadline runs
        self.received = False  # any byte of the awaited request part arrived

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            logger.warning("refused a connection: %d open (max_connections)", len(self.connections) - 1)
            transport.write(raw_error(503, "Service Unavailable", "too_many_connections",
                                      "the server has too many open connections; retry shortly", "retry-after: 1\r\n"))
            transport.close()
            return
        self._expect("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.received = True
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._follow_request()

    def send_400_response(self, msg: str) -> None:
        self._cancel()
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self.transport.write(raw_error(400, "Bad Request", "bad_http_request",
                                           "the request is not valid HTTP/1.1 (request line, headers or their size)"))
        self.transport.close()

    # -- deadlines -------------------------------------------------------------------------------------
    def _follow_request(self) -> None:
        """Arm the deadline of what the client owes next: headers, body, or nothing while the answer is made."""
        state = self.conn.their_state
        if state is h11.IDLE:
            if self.waiting_for != "headers":
                self._expect("headers")
        elif state is h11.SEND_BODY:
            if self.waiting_for != "body":
                self._expect("body")
        else:
            self._cancel()

    def _expect(self, part: str) -> None:
        self._cancel()
        seconds = self.limits.header_timeout if part == "headers" else self.limits.body_timeout
        self.waiting_for, self.received = part, part == "body"
        self.deadline = self.loop.call_later(seconds, self._expired)

    def _cancel(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline, self.waiting_for = None, ""

    def _expired(self) -> None:
        part, started = self.waiting_for, self.received
        self.deadline, self.waiting_for = None, ""
        if self.transport.is_closing():
            return
        if started and self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            seconds = self.limits.header_timeout if part == "headers" else self.limits.body_timeout
            logger.info("closed a connection whose request %s took longer than %.0f s", part, seconds)
            self.transport.write(raw_error(408, "Request Timeout", "request_timeout",
                                           f"the request's {part} did not arrive within {seconds:g} s"))
        self.transport.close()  # an idle connection (nothing sent) is closed without an answer
