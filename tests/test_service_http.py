"""HTTP as RFC 9110/9112 ask, on a real server: clients that never read, TLS handshakes under the cap and the
deadline, request smuggling, absolute-form targets, HTTP versions, repeated fields, content codings, oversized
chunks, and which address a failed login counts against (issue 23)."""

from __future__ import annotations

import json
import socket
import ssl
import time

import httpx
import pytest
from service_fixtures import KEY, auth, live_server, make_tls_files

from toolkit.service.server import ServerOptions


def address(url: str) -> tuple[str, int]:
    host, port = url.split("://")[1].split(":")
    return host, int(port)


def exchange(url: str, request: bytes, limit: float = 5.0) -> tuple[bytes, bool]:
    """Send raw bytes; (everything answered, whether the server closed the connection within `limit` s)."""
    with socket.create_connection(address(url)) as sock:
        sock.sendall(request)
        sock.settimeout(limit)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            pass
    return data, True


def status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def answers(data: bytes) -> int:
    return data.count(b"HTTP/1.1 ")


@pytest.fixture(scope="module")
def server(svc_config):
    with live_server(svc_config) as url:
        yield url


# -- smuggling, targets, versions, repeated fields (RFC 9112 §3, §6.3; RFC 9110 §5.3, §6.2) -----------------------
def test_content_length_with_transfer_encoding_gets_400_and_the_connection_closes(server):
    smuggled = b"POST /v1/static HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    data, closed = exchange(server, smuggled + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, body = status_and_json(data)
    assert status == 400 and body["error"] == "bad_http_request" and "Transfer-Encoding" in body["message"]
    assert closed and answers(data) == 1  # the request behind it is not answered


@pytest.mark.parametrize("target", [b"http://127.0.0.1/healthz", b"HTTPS://example.org:8443/healthz?x=1"])
def test_an_absolute_form_target_is_answered_like_its_path(server, target):
    data, _ = exchange(server, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200") and json.loads(data.partition(b"\r\n\r\n")[2])["status"] == "ok"


def test_a_target_that_is_neither_a_path_nor_an_http_url_gets_400(server):
    data, closed = exchange(server, b"GET ftp://127.0.0.1/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_and_json(data)[0] == 400 and closed


@pytest.mark.parametrize("version", [b"HTTP/9.9", b"HTTP/2.0", b"HTTP/0.9"])
def test_other_http_major_versions_get_505(server, version):
    data, closed = exchange(server, b"GET /healthz " + version + b"\r\nHost: x\r\n\r\n")
    status, body = status_and_json(data)
    assert status == 505 and body["error"] == "http_version_not_supported" and closed


def test_http_1_0_is_still_served(server):
    data, _ = exchange(server, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("field", [b"Authorization: Bearer " + KEY.encode(), b"Content-Type: application/json"])
def test_a_field_that_may_appear_once_given_twice_gets_400(server, field):
    request = (b"GET /v1/manifest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() + b"\r\n"
               b"Content-Type: application/json\r\n" + field + b"\r\n\r\n")
    data, closed = exchange(server, request)
    status, body = status_and_json(data)
    assert status == 400 and "may be sent once" in body["message"] and closed


# -- bodies: codings and chunks ------------------------------------------------------------------------------------
def test_a_compressed_body_gets_415_with_accept_encoding(server):
    answer = httpx.post(f"{server}/v1/generate", content=b"\x1f\x8b\x08\x00", headers={
        **auth(), "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert answer.status_code == 415 and answer.json()["error"] == "unsupported_content_encoding"
    assert answer.headers["accept-encoding"] == "identity"


def test_a_chunk_larger_than_the_body_limit_gets_413_as_soon_as_its_size_arrives(server):
    head = (f"POST /v1/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json"
            f"\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    started = time.monotonic()
    data, closed = exchange(server, head + b"ffffffffffffffff\r\n", limit=5)
    status, body = status_and_json(data)
    assert status == 413 and body["error"] == "body_too_large" and closed
    assert time.monotonic() - started < 3  # not the 30 s body deadline


def test_chunks_within_the_limit_are_still_read(server, svc_run):
    from toolkit.training.runs import load_run

    run = load_run(svc_run)
    body = json.dumps(run.task.example_request(int(run.task.devices("test")[0]))).encode()

    def chunks():
        yield body[:10]
        yield body[10:]

    answer = httpx.post(f"{server}/v1/generate", content=chunks(), headers={**auth(), "Content-Type": "application/json"})
    assert answer.status_code == 200


# -- clients that never read ---------------------------------------------------------------------------------------
READERS = ServerOptions(header_timeout=3.0, body_timeout=3.0, max_connections=4, send_timeout=1.0,
                        max_pending_output=16 * 1024)


def test_connections_that_never_read_their_answers_are_closed_and_others_get_in_again(svc_config):
    with live_server(svc_config, READERS) as url:
        pipelined = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 300  # answers of ~10 KB each, never read
        readers = []
        for _ in range(READERS.max_connections):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server's output piles up
            sock.connect(address(url))
            sock.sendall(pipelined)
            readers.append(sock)
        try:
            time.sleep(0.3)
            assert httpx.get(f"{url}/healthz").status_code == 503  # the cap is full of readers that do not read
            deadline, status = time.monotonic() + 8, 503
            while time.monotonic() < deadline and status != 200:
                time.sleep(0.2)
                status = httpx.get(f"{url}/healthz").status_code
            assert status == 200  # the send timeout closed them
            for sock in readers:  # each was closed by the server (what it had sent is still readable)
                sock.settimeout(5)
                try:
                    while sock.recv(1 << 20):
                        pass
                except ConnectionResetError:
                    pass
        finally:
            for sock in readers:
                sock.close()


def test_a_slow_but_steady_reader_gets_its_whole_answer(svc_config):
    with live_server(svc_config, READERS) as url:
        full = httpx.get(f"{url}/openapi.json").content
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(address(url))
            sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(2048):  # a read every 50 ms: slower than the server, never stalled for 1 s
                data += chunk
                time.sleep(0.05)
        assert data.endswith(full)


# -- TLS: handshakes are connections too -----------------------------------------------------------------------------
def test_tls_handshakes_count_towards_the_cap_and_run_under_the_header_deadline(svc_config, tmp_path):
    ca, cert, key = make_tls_files(tmp_path)
    options = ServerOptions(header_timeout=1.0, max_connections=3, ssl_certfile=str(cert), ssl_keyfile=str(key))
    with live_server(svc_config, options) as url:
        url = url.replace("http://", "https://")
        verify = ssl.create_default_context(cafile=str(ca))
        assert httpx.get(f"{url}/healthz", verify=verify).status_code == 200
        silent = [socket.create_connection(address(url)) for _ in range(options.max_connections)]  # no handshake
        try:
            time.sleep(0.2)
            with pytest.raises(httpx.HTTPError):  # the cap is reached: refused before its handshake
                httpx.get(f"{url}/healthz", verify=verify, timeout=3)
            for sock in silent:  # closed at the header deadline (asyncio's own handshake timeout is 60 s)
                sock.settimeout(4)
                assert sock.recv(1) == b""
        finally:
            for sock in silent:
                sock.close()
        assert httpx.get(f"{url}/healthz", verify=verify).status_code == 200


def test_tls_refuses_versions_before_1_2(svc_config, tmp_path):
    ca, cert, key = make_tls_files(tmp_path)
    with live_server(svc_config, ServerOptions(ssl_certfile=str(cert), ssl_keyfile=str(key))) as url:
        old = ssl.create_default_context(cafile=str(ca))
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((ssl.SSLError, OSError)):
            with socket.create_connection(address(url)) as sock, old.wrap_socket(sock, server_hostname="127.0.0.1"):
                pass


# -- whose failed logins: the socket's peer, unless it is a trusted proxy ---------------------------------------------
def test_x_forwarded_for_from_an_untrusted_peer_changes_nothing(svc_config):
    with live_server(svc_config, auth_failure_rate=0.1, auth_failure_burst=3) as url:
        statuses = [httpx.get(f"{url}/v1/manifest", headers={**auth("duet_guess"), "X-Forwarded-For": f"10.0.0.{i}"})
                    .status_code for i in range(5)]
        assert statuses == [401, 401, 401, 429, 429]
        held = httpx.get(f"{url}/v1/manifest", headers={**auth(), "X-Forwarded-For": "8.8.8.8"})
        assert held.status_code == 429


def test_a_trusted_proxy_names_the_client_and_non_addresses_are_not_clients(svc_config):
    with live_server(svc_config, auth_failure_rate=0.1, auth_failure_burst=2, trusted_proxies="127.0.0.1") as url:
        def login(forwarded: str, key: str = "duet_guess") -> int:
            return httpx.get(f"{url}/v1/manifest", headers={**auth(key), "X-Forwarded-For": forwarded}).status_code

        assert [login("203.0.113.7") for _ in range(3)] == [401, 401, 429]
        assert login("203.0.113.7", KEY) == 429  # that client is held off
        assert login("198.51.100.1", KEY) == 200  # another client behind the same proxy is not
        assert login("127.0.0.1, 198.51.100.2", KEY) == 200  # the last address that is not a trusted proxy
        assert [login(f"not-an-address-{i}") for i in range(3)] == [401, 401, 429]  # all count against the proxy


def test_trusted_proxies_must_be_addresses_or_networks():
    from toolkit.errors import ConfigError
    from toolkit.service.config import ServiceConfig

    with pytest.raises(ConfigError, match="'example.org' is not an IP address or network"):
        ServiceConfig("r", "e", "k", trusted_proxies="10.0.0.0/8, example.org")
    assert ServiceConfig("r", "e", "k", trusted_proxies="10.0.0.0/8, ::1").trusted_proxies
