"""The connection layer on a real server: slow clients are cut off, connections are capped, parser errors are JSON,
HEAD works where GET does; good clients are served meanwhile (toolkit/service/connections.py)."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from service_fixtures import KEY, auth, live_server

from toolkit.service.server import ServerOptions

LIMITS = ServerOptions(header_timeout=1.0, body_timeout=1.5, max_connections=6, keep_alive=5.0)


@pytest.fixture(scope="module")
def strict_server(svc_config):
    """A server whose deadlines are short enough to watch: headers 1 s, body 1.5 s, 6 connections."""
    with live_server(svc_config, LIMITS) as url:
        yield url


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def read_until_closed(sock: socket.socket, limit: float = 10.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started, data = time.monotonic(), b""
    sock.settimeout(limit)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data, time.monotonic() - started
        data += chunk


def status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def test_a_silent_connection_is_closed_after_the_header_timeout_without_an_answer(strict_server):
    with socket.create_connection(address(strict_server)) as sock:
        answer, seconds = read_until_closed(sock)
    assert answer == b"" and 0.8 < seconds < 4


def test_partial_headers_get_408_in_json(strict_server):
    with socket.create_connection(address(strict_server)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        answer, seconds = read_until_closed(sock)
    status, body = status_and_json(answer)
    assert status == 408 and body["error"] == "request_timeout" and "headers" in body["message"]
    assert seconds < 4


def test_headers_sent_one_byte_at_a_time_do_not_extend_the_deadline(strict_server):
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40
    started = time.monotonic()
    with socket.create_connection(address(strict_server)) as sock:
        try:
            for byte in request:
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
        except OSError:  # the server closed the connection while bytes were still coming
            pass
        answer, _ = read_until_closed(sock)
    assert time.monotonic() - started < 4  # 41 bytes at 10/s would take 4.1 s
    assert status_and_json(answer)[0] == 408


def test_half_a_body_gets_408_and_counts_as_a_client_error(strict_server):
    def count(status: str) -> float:
        line = f'duet_http_requests_total{{endpoint="/v1/generate",status="{status}"}}'
        text = httpx.get(f"{strict_server}/metrics").text
        return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(line))

    before_500 = count("500")
    with socket.create_connection(address(strict_server)) as sock:
        sock.sendall(f"POST /v1/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"device_id\": ".encode())
        answer, seconds = read_until_closed(sock)
    status, body = status_and_json(answer)
    assert status == 408 and "body" in body["message"] and 1.0 < seconds < 5
    assert count("500") == before_500


def test_good_clients_are_served_while_slow_ones_wait_for_their_deadline(strict_server):
    slow = [socket.create_connection(address(strict_server)) for _ in range(3)]
    try:
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        for _ in range(5):
            assert httpx.get(f"{strict_server}/healthz").status_code == 200
        assert httpx.get(f"{strict_server}/v1/manifest", headers=auth()).status_code == 200
    finally:
        for sock in slow:
            sock.close()


def test_connections_beyond_the_cap_get_503_with_retry_after_and_later_ones_are_served(strict_server):
    time.sleep(LIMITS.header_timeout + 0.5)  # earlier tests' connections have been closed by now
    held = [socket.create_connection(address(strict_server)) for _ in range(LIMITS.max_connections)]
    try:
        time.sleep(0.2)
        with socket.create_connection(address(strict_server)) as extra:
            answer, _ = read_until_closed(extra)
        status, body = status_and_json(answer)
        assert status == 503 and body["error"] == "too_many_connections"
        assert b"retry-after: 1" in answer.lower()
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{strict_server}/healthz").status_code == 200


@pytest.mark.parametrize("request_bytes", [
    b"NOT A REQUEST\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n",
])
def test_requests_the_http_parser_refuses_get_a_json_400(strict_server, request_bytes):
    with socket.create_connection(address(strict_server)) as sock:
        sock.sendall(request_bytes)
        answer, _ = read_until_closed(sock)
    status, body = status_and_json(answer)
    assert status == 400 and body["error"] == "bad_http_request"


@pytest.mark.parametrize("pieces", [1, 40])
def test_oversized_headers_are_refused_whether_they_arrive_at_once_or_in_pieces(strict_server, pieces):
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    size = -(-len(request) // pieces)
    with socket.create_connection(address(strict_server)) as sock:
        try:
            for start in range(0, len(request), size):
                sock.sendall(request[start : start + size])
                time.sleep(0.01 * (pieces > 1))
        except OSError:  # refused before the rest was sent
            pass
        answer, _ = read_until_closed(sock)
    status, body = status_and_json(answer)
    assert (status, body["error"]) in ((400, "bad_http_request"), (431, "headers_too_large"))


def test_head_answers_where_get_does_with_headers_and_no_body(strict_server):
    full = httpx.get(f"{strict_server}/v1/manifest", headers=auth())
    head = httpx.head(f"{strict_server}/v1/manifest", headers=auth())
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == full.headers["content-length"] and head.headers["etag"] == full.headers["etag"]
    assert httpx.head(f"{strict_server}/healthz").status_code == 200
    assert httpx.head(f"{strict_server}/v1/manifest").status_code == 401  # HEAD needs the key like GET
    assert httpx.head(f"{strict_server}/v1/generate", headers=auth()).status_code == 405


def test_server_options_refuse_nonsense():
    from toolkit.errors import ConfigError

    for bad in ({"header_timeout": 0}, {"body_timeout": -1}, {"max_connections": 0}, {"port": 70000}):
        with pytest.raises(ConfigError):
            ServerOptions(**bad)
