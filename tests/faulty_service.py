"""A misbehaving stand-in of the service on 127.0.0.1, for the failures the real `cli.py serve` never produces.

The mobile cores' tests (and the Python client's) point a client at `URL/<mode>` and check that it refuses what
it gets and keeps what it had. The manifest is the real service's everywhere; the other answers depend on the
mode (tests/live_service.py writes the URL and these modes into live.json):

    tampered          slot answers with one data byte flipped, under the sha256 of the untampered blob
    wrong-version     a valid slot blob whose X-Model-Version is not the manifest's
    wrong-artifact    the program file under an X-Artifact-SHA256 that is not the manifest's
    corrupt-artifact  other bytes than the program, with no X-Artifact-SHA256 header (only the digest can tell)
    hangup            the headers and half of the body (slots or program), then the connection closes
    busy              503 {"error": "overloaded"} with Retry-After: 2 for everything but the manifest
    not-json          502 with a plain-text body for everything but the manifest
    silent            accepts, reads the request, answers nothing for up to 30 s
    endless-artifact  the program file, then zeros without end (up to ENDLESS_BYTES; no Content-Length)

This is a stub on purpose: a real server that behaves like this is a broken one. Everything the real service
does is tested against the real service.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("tampered", "wrong-version", "wrong-artifact", "corrupt-artifact", "hangup", "busy", "not-json", "silent",
         "endless-artifact")
SILENT_SECONDS = 30.0
ENDLESS_BYTES = 1 << 30  # what endless-artifact sends at most after the file, if the client reads on


class FaultyService:
    """The stand-in, serving in a thread: `with FaultyService(manifest_bytes, slot_blob, artifacts) as url: ...`."""

    def __init__(self, manifest: bytes, slot_blob: bytes, artifacts: dict[str, bytes]):
        self.manifest, self.slot_blob, self.artifacts = manifest, slot_blob, artifacts
        self.model_version = json.loads(manifest)["model_version"]
        self.endless_sent = 0  # bytes endless-artifact sent on its last answer before the client hung up
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet: the tests read answers, not logs
                pass

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(min(length, 1 << 20))
                self._answer()

            def _answer(self) -> None:
                mode, _, rest = self.path.lstrip("/").partition("/")
                path = "/" + rest.split("?")[0]
                if mode not in MODES:
                    return self._send(404, json.dumps({"error": "not_found", "message": f"no mode {mode!r}"}).encode(),
                                      "application/json")
                if path == "/v1/manifest":
                    return self._send(200, service.manifest, "application/json")
                if mode == "silent":
                    deadline = time.monotonic() + SILENT_SECONDS
                    while time.monotonic() < deadline and not _closed(self.connection):
                        time.sleep(0.1)
                    self.close_connection = True
                    return None
                if mode == "busy":
                    return self._send(503, b'{"error": "overloaded", "message": "the generate queue is full"}',
                                      "application/json", {"Retry-After": "2"})
                if mode == "not-json":
                    return self._send(502, b"Bad Gateway: upstream went away", "text/plain")
                if path.startswith("/v1/artifacts/"):
                    return self._artifact(mode, path.rsplit("/", 1)[-1])
                if path in ("/v1/generate", "/v1/slots/base"):
                    return self._slots(mode)
                return self._send(404, b'{"error": "not_found", "message": "no route"}', "application/json")

            def _slots(self, mode: str) -> None:
                blob, version = service.slot_blob, service.model_version
                digest = hashlib.sha256(blob).hexdigest()
                if mode == "tampered":
                    flipped = bytearray(blob)
                    flipped[-3] ^= 0xFF
                    blob = bytes(flipped)
                elif mode == "wrong-version":
                    version = "f" * 16
                headers = {"X-Blob-SHA256": digest, "X-Model-Version": version, "X-Slot-Dtype": "float32"}
                if mode == "hangup":
                    return self._half(blob, headers)
                return self._send(200, blob, "application/octet-stream", headers)

            def _artifact(self, mode: str, target: str) -> None:
                data = service.artifacts.get(target)
                if data is None:
                    return self._send(404, b'{"error": "unknown_target", "message": "no such target"}',
                                      "application/json")
                headers = {"X-Artifact-SHA256": hashlib.sha256(data).hexdigest()}
                if mode == "wrong-artifact":
                    headers["X-Artifact-SHA256"] = "0" * 64
                elif mode == "corrupt-artifact":
                    data, headers = bytes(len(data)), {}
                elif mode == "hangup":
                    return self._half(data, headers)
                elif mode == "endless-artifact":
                    return self._endless(data)
                return self._send(200, data, "application/octet-stream", headers)

            def _endless(self, data: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                service.endless_sent, zeros = 0, bytes(1 << 16)
                try:
                    self.wfile.write(data)
                    service.endless_sent = len(data)
                    while service.endless_sent < len(data) + ENDLESS_BYTES:
                        self.wfile.write(zeros)
                        service.endless_sent += len(zeros)
                except OSError:  # the client stopped reading and closed
                    pass

            def _half(self, data: bytes, headers: dict[str, str]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

            def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler


def _closed(connection: socket.socket) -> bool:
    """Whether the client has closed its side (a zero-byte peek)."""
    try:
        connection.setblocking(False)
        return connection.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        connection.setblocking(True)
