"""h11's request parser with the refusals RFC 9110/9112 ask of a server that h11 leaves to it.

Each refusal raises Refused (an h11.RemoteProtocolError) with the status to answer (`error_status_hint`); the
connection layer (toolkit.service.connections) answers it in the service's JSON shape and closes the connection:

- Content-Length together with Transfer-Encoding (RFC 9112 §6.3: a smuggling attempt): 400;
- an HTTP major version other than 1 (RFC 9110 §6.2): 505;
- a field that may appear once given twice (Authorization, Content-Type, Host: which one counts is ambiguous): 400;
- a request target that is neither origin-form nor absolute-form http(s) (RFC 9112 §3.2): 400; an absolute-form
  target is accepted (RFC 9112 §3.2.2) and passed on as its path and query;
- a chunk whose declared size alone takes the body past the body limit: 413 as soon as its size line arrives.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import h11

SINGLE_FIELDS = (b"authorization", b"content-type", b"host")  # fields a request may carry at most once


class Refused(h11.RemoteProtocolError):
    """A request this parser refuses (h11 accepted it); its message is written for the client."""


class CheckedConnection(h11.Connection):
    """A server-side h11.Connection whose `next_event` also makes the refusals above; `refusal` keeps the last."""

    def __init__(self, max_body_bytes: int, max_incomplete_event_size: int):
        super().__init__(h11.SERVER, max_incomplete_event_size=max_incomplete_event_size)
        self.max_body_bytes = max_body_bytes
        self.body_received = 0  # bytes of the current request's body so far
        self.refusal: h11.RemoteProtocolError | None = None

    def next_event(self):  # type: ignore[override]
        try:
            event = super().next_event()
            if isinstance(event, h11.Request):
                event = checked_request(event)
                self.body_received = 0
            elif isinstance(event, h11.Data):
                self.body_received += len(event.data)
            self._check_chunk()
        except h11.RemoteProtocolError as err:
            self.refusal = err
            raise
        return event

    def _check_chunk(self) -> None:
        """413 once the chunks so far and the one whose size line arrived take the body past the limit (h11 would
        wait for all the bytes a size line announces: up to 2**80)."""
        in_chunk = getattr(self._reader, "_bytes_in_chunk", None)  # h11's ChunkedReader: bytes left in this chunk
        if isinstance(in_chunk, int) and self.body_received + in_chunk > self.max_body_bytes:
            raise Refused(f"the body exceeds {self.max_body_bytes} bytes (its chunks announce "
                          f"{self.body_received + in_chunk})", error_status_hint=413)


def checked_request(event: h11.Request) -> h11.Request:
    """The request as the app should see it (an absolute-form target as origin-form), or RemoteProtocolError."""
    if not event.http_version.startswith(b"1."):
        raise Refused(f"HTTP/{event.http_version.decode('ascii', 'replace')} is not supported; "
                                      f"this server speaks HTTP/1.1", error_status_hint=505)
    names = [name for name, _ in event.headers]
    if b"content-length" in names and b"transfer-encoding" in names:
        raise Refused("a request may not carry both Content-Length and Transfer-Encoding")
    repeated = [name for name in SINGLE_FIELDS if names.count(name) > 1]
    if repeated:
        raise Refused(f"the {repeated[0].decode()} header may be sent once, it was sent "
                                      f"{names.count(repeated[0])} times")
    target = event.target
    if target.startswith(b"/") or (target == b"*" and event.method == b"OPTIONS"):
        return event
    parts = urlsplit(target.decode("ascii", "replace"))
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise Refused("the request target must be a path (/...) or an absolute http(s) URL")
    origin_form = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return h11.Request(method=event.method, target=origin_form.encode("ascii"), headers=event.headers,
                       http_version=event.http_version)
