"""The service's connection layer: uvicorn's h11 protocol with deadlines, caps, TLS after the accept, JSON errors.

uvicorn bounds idle keep-alive connections but not a client that is slow while sending or while reading:
partial headers, a half body, one byte every few seconds, or answers that are never read would hold a connection
(and its memory) for as long as the client likes. Here:

- every request has two deadlines: its headers must be complete within `header_timeout` seconds of the
  connection opening (or of the previous answer), and its body within `body_timeout` seconds of its headers;
  past one, the client gets 408 (when nothing was answered yet) and the connection is closed;
- output a client does not read is capped: past `max_pending_output` unsent bytes the connection produces
  nothing more (asyncio's write-buffer high-water mark), and if it stays there `send_timeout` seconds the
  connection is closed;
- beyond `max_connections` open connections per process a new one gets 503 + Retry-After and is closed;
- TLS is started by this protocol after the TCP accept (not by the listening socket), so a connection in its
  handshake counts towards `max_connections` and the handshake runs under the header deadline;
- on shutdown an idle keep-alive connection stays open for SHUTDOWN_DRAIN_S: a request already on its way is
  answered (with `Connection: close`) instead of being reset;
- the HTTP parser's refusals (toolkit.service.http_parser: malformed requests, smuggling, HTTP/2+, oversized
  chunks) are answered in the service's JSON error shape.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
from dataclasses import dataclass
from typing import Any

import h11
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from uvicorn.protocols.http.flow_control import CLOSE_HEADER
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol

from toolkit.service.http_parser import CheckedConnection, Refused

logger = logging.getLogger(__name__)

LIMITS_ATTRIBUTE = "duet_connection_limits"  # the uvicorn.Config attribute the protocol reads its limits from
SHUTDOWN_DRAIN_S = 1.0  # how long an idle keep-alive connection waits, at shutdown, for a request on its way
ERROR_CODES = {400: "bad_http_request", 408: "request_timeout", 413: "body_too_large", 431: "headers_too_large",
               501: "not_implemented", 503: "too_many_connections", 505: "http_version_not_supported"}


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take to send a request or to read its answer, how much one connection may hold, and
    how many connections one process keeps open; the TLS files when the service speaks https."""

    header_timeout: float = 10.0  # seconds from connection (or the previous answer) to the request's last header
    body_timeout: float = 30.0  # seconds from the request's headers to its body's last byte
    max_connections: int = 1024  # open connections per process, TLS handshakes included; beyond it 503
    send_timeout: float = 30.0  # seconds a connection's unsent output may stay above max_pending_output
    max_pending_output: int = 256 * 1024  # unsent bytes per connection before it stops producing answers
    max_body_bytes: int = 1 << 20  # a chunk announcing more than this (with the body so far) gets 413 at once
    ssl_certfile: str = ""  # TLS certificate chain (PEM); "" for plain HTTP
    ssl_keyfile: str = ""  # its private key (PEM)


@functools.lru_cache(maxsize=4)
def server_tls_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """The server's TLS context (once per process): TLS 1.2 or later, forward-secret AEAD suites only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    context.load_cert_chain(certfile, keyfile)
    return context


def raw_error(status: int, code: str, message: str, extra_headers: str = "") -> bytes:
    """A complete HTTP/1.1 error answer in the service's JSON shape, closing the connection."""
    body = json.dumps({"error": code, "message": message}).encode()
    head = (f"HTTP/1.1 {status} {STATUS_PHRASES[status].decode()}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n{extra_headers}\r\n")
    return head.encode("latin-1") + body


class BoundedH11Protocol(H11Protocol):
    """uvicorn's H11Protocol plus the deadlines, caps, TLS and drain of ConnectionLimits (read from the config)."""

    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: ConnectionLimits = getattr(config, LIMITS_ATTRIBUTE, None) or ConnectionLimits()
        self.conn = CheckedConnection(self.limits.max_body_bytes, config.h11_max_incomplete_event_size
                                      or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE)
        self.deadline: asyncio.TimerHandle | None = None
        self.waiting_for = ""  # "headers" or "body" while a deadline runs
        self.received = False  # any byte of the awaited request part arrived
        self.send_deadline: asyncio.TimerHandle | None = None
        self.drain: asyncio.TimerHandle | None = None  # set once the server shuts down
        self.handshake: asyncio.Task | None = None
        self.early = b""  # request bytes TLS decrypted before its handshake task resumed

    # -- connections -----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.connections.add(self)
        self.transport = transport  # the TCP transport until a TLS handshake replaces it
        if len(self.connections) > self.limits.max_connections:
            logger.warning("refused a connection: %d open (max_connections)", len(self.connections) - 1)
            if not self.limits.ssl_certfile:  # a TLS client could not read a plain-text answer
                transport.write(raw_error(503, "too_many_connections",
                                          "the server has too many open connections; retry shortly",
                                          "retry-after: 1\r\n"))
            transport.close()
            self.connections.discard(self)
            return
        self._expect("headers")
        if self.limits.ssl_certfile:
            self.handshake = self.loop.create_task(self._start_tls(transport))
        else:
            self._opened(transport)

    async def _start_tls(self, tcp: asyncio.Transport) -> None:
        context = server_tls_context(self.limits.ssl_certfile, self.limits.ssl_keyfile)
        try:
            tls = await self.loop.start_tls(tcp, self, context, server_side=True,
                                            ssl_handshake_timeout=self.limits.header_timeout)
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError, RuntimeError) as err:
            logger.info("TLS handshake failed: %s", err)
            self._cancel()
            tcp.close()
            self.connections.discard(self)
            return
        if tls is None or tcp.is_closing():  # closed meanwhile (deadline, shutdown)
            self.connections.discard(self)
            return
        self._opened(tls)

    def _opened(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        transport.set_write_buffer_limits(high=self.limits.max_pending_output)
        if self.early:
            early, self.early = self.early, b""
            self.data_received(early)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        for timer in (self.send_deadline, self.drain):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.flow is None:  # TLS: the first request arrived with the handshake's last flight
            self.early += data
            return
        self.received = True
        super().data_received(data)
        if self.drain is not None and self.cycle is not None and not self.cycle.response_complete:
            self._close_after_answer()  # arrived while shutting down
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._follow_request()

    def send_400_response(self, msg: str) -> None:
        """Answer a request the parser refused (with the status it names, else 400) and close the connection."""
        self._cancel()
        refusal = getattr(self.conn, "refusal", None)
        status = getattr(refusal, "error_status_hint", 400)
        if status not in ERROR_CODES:
            status = 400
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            message = str(refusal) if isinstance(refusal, Refused) else "the request is not valid HTTP/1.1 " + (
                f"({refusal})" if refusal is not None else "(request line, headers or their size)")
            self.transport.write(raw_error(status, ERROR_CODES[status], message))
        self.transport.close()

    # -- writing: output the client does not read ------------------------------------------------------
    def pause_writing(self) -> None:
        super().pause_writing()
        if self.send_deadline is None:
            self.send_deadline = self.loop.call_later(self.limits.send_timeout, self._send_expired)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.send_deadline is not None:
            self.send_deadline.cancel()
            self.send_deadline = None

    def _send_expired(self) -> None:
        self.send_deadline = None
        logger.info("closed a connection that read none of its pending answer for %.0f s", self.limits.send_timeout)
        self.transport.abort()

    # -- shutdown: requests already on their way are answered ------------------------------------------
    def shutdown(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self._close_after_answer()
        elif self.drain is None:
            self.drain = self.loop.call_later(SHUTDOWN_DRAIN_S, self._drained)

    def _close_after_answer(self) -> None:
        """The request in progress is answered, with `Connection: close` unless its answer has started, and then
        the connection is closed (uvicorn adds that header to the answer of a request that carries it)."""
        self.cycle.keep_alive = False
        if not self.cycle.response_started and CLOSE_HEADER not in self.cycle.scope["headers"]:
            self.cycle.scope["headers"].append(CLOSE_HEADER)

    def _drained(self) -> None:
        """Close the connection unless a request arrived during the drain (its answer closes it)."""
        busy = self.cycle is not None and not self.cycle.response_complete
        if busy or self.transport.is_closing() or (self.waiting_for == "headers" and self.received):
            return  # a request in progress, or headers arriving under their deadline
        if self.conn.our_state is h11.IDLE:
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()

    # -- reading: deadlines ----------------------------------------------------------------------------
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
            self.transport.write(raw_error(408, "request_timeout",
                                           f"the request's {part} did not arrive within {seconds:g} s"))
        self.transport.close()  # an idle connection (nothing sent) is closed without an answer
