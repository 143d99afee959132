"""Closed-loop HTTP load test of the service on loopback: N keep-alive connections, raw asyncio HTTP/1.1.

Each of `concurrency` connections sends its next request as soon as the previous answer is complete, until
`requests` have been sent or `max_seconds` have passed. A request is `ok` when it is answered 200 with a
complete body; anything else (another status, a timeout, a dropped connection) is an error, so
requests == ok + errors: nothing is lost silently. The client is raw asyncio rather than httpx because it
shares the CPU with the server under test: its per-request cost is a few microseconds of parsing.

Bodies: JSON lines from a file, or by default the example bodies the service publishes in its OpenAPI
document for POST /v1/generate (the run's test devices), sent round-robin.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from toolkit.protocol import routes
from toolkit.artifacts import read_small_file, strict_json
from toolkit.errors import ConfigError, one_line
from toolkit.options import check_ranges, option
from toolkit.protocol.tls import tls_context
from toolkit.protocol.wire import BODY_FORMATS

MAX_REQUESTS = 1_000_000  # the most one load test may send
MAX_CONCURRENCY = 1024  # the most connections one load test may open


@dataclass(frozen=True)
class LoadTestConfig:
    """One load test: where, how hard, how long."""

    url: str  # the service's base URL (generate is posted to), or a full URL of another POST endpoint
    api_key: str  # sent as 'Authorization: Bearer <key>'
    concurrency: int = option(64, "Simultaneous keep-alive connections, each with one request in flight.", minimum=1,
                              maximum=MAX_CONCURRENCY)
    requests: int = option(20_000, "Requests to send.", minimum=1, maximum=MAX_REQUESTS)
    max_seconds: float = option(600.0, "Stop sending after this long (what was sent is still counted).", minimum=0,
                                above=True, maximum=86_400)
    timeout_s: float = option(30.0, "Per-request limit in seconds; beyond it the request counts as an error.",
                              minimum=0, above=True, maximum=3600,
                              flag="--timeout")
    query: str = ""  # query string added to every request, e.g. "dtype=float16"
    ca_file: str = option("", "CA certificate (PEM) that signed the service's TLS certificate, for https:// URLs "
                              "(default: the system's CAs).")
    body_format: str = option("json", "Send the bodies as JSON or in the compact binary form (safetensors, "
                                      "application/octet-stream).", choices=BODY_FORMATS)

    def __post_init__(self) -> None:
        check_ranges(self, "load test")  # at most MAX_REQUESTS requests on MAX_CONCURRENCY connections


@dataclass(frozen=True)
class Target:
    """A loopback endpoint."""

    host: str
    port: int
    path: str  # path and query of every request
    tls: bool = False  # https: connections are wrapped in TLS


def loopback_target(url: str, query: str = "") -> Target:
    """Parse `url`; only loopback hosts are accepted (load tests never leave the machine)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{url}: the load test speaks http or https to a loopback address")
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError as err:  # a port beyond 65535 or not a number
        raise ConfigError(f"{url}: {err}") from None
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(f"{url}: load tests target loopback only (127.0.0.1, ::1 or localhost), not {host!r}")
    path = parts.path if parts.path not in ("", "/") else routes.GENERATE
    query = "&".join(q for q in (parts.query, query) if q)
    tls = parts.scheme == "https"
    return Target(host, port or (443 if tls else 80), path + (f"?{query}" if query else ""), tls)


def bodies_from_file(path: str | Path) -> list[bytes]:
    """One JSON body per non-blank line."""
    try:
        lines = read_small_file(Path(path)).decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the bodies ({one_line(err, 120)})") from err
    bodies = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                bodies.append(json.dumps(strict_json(line), separators=(",", ":")).encode())
            except (ValueError, RecursionError) as err:  # not JSON, NaN, a 5,000-digit number, nested too deep
                raise ConfigError(f"{path}:{number}: not a JSON body ({one_line(err, 120)})") from err
    if not bodies:
        raise ConfigError(f"{path}: no bodies (one JSON object per line)")
    return bodies


def bodies_from_openapi(url: str, ca_file: str = "") -> list[bytes]:
    """The example bodies the service publishes for POST /v1/generate."""
    import httpx

    parts = urlsplit(url)
    try:
        doc = httpx.get(f"{parts.scheme}://{parts.netloc}/openapi.json", timeout=30,
                        verify=tls_context(ca_file)).raise_for_status().json()
        examples = doc["paths"][routes.GENERATE]["post"]["requestBody"]["content"]["application/json"]["examples"]
    except (httpx.HTTPError, KeyError, ValueError) as err:
        raise ConfigError(f"{url}: no generate examples in /openapi.json ({err}); pass --bodies FILE") from err
    bodies = [json.dumps(e["value"], separators=(",", ":")).encode() for e in examples.values()]
    if not bodies:
        raise ConfigError(f"{url}: the service publishes no example bodies (--examples 0); pass --bodies FILE")
    return bodies


def _request_bytes(target: Target, api_key: str, body: bytes, content_type: str) -> bytes:
    head = (f"POST {target.path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
            f"Authorization: Bearer {api_key}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, keep the connection) of one response; its body is read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked, close = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, not close


class _Counter:
    def __init__(self, total: int, deadline: float):
        self.left, self.deadline = total, deadline

    def take(self) -> bool:
        if self.left <= 0 or time.monotonic() >= self.deadline:
            return False
        self.left -= 1
        return True


async def _connection(target: Target, payloads: list[bytes], counter: _Counter, offset: int, timeout: float,
                      latencies: list[float], statuses: dict[str, int], tls: ssl.SSLContext | None) -> None:
    reader = writer = None
    index = offset
    while counter.take():
        request = payloads[index % len(payloads)]
        index += 1
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(target.host, target.port, ssl=tls), timeout)
            writer.write(request)
            await writer.drain()
            status, keep = await asyncio.wait_for(_read_response(reader), timeout)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError, IndexError) as err:
            statuses[type(err).__name__] = statuses.get(type(err).__name__, 0) + 1
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        latencies.append(time.perf_counter() - started)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if not keep:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def run_load(config: LoadTestConfig, bodies: list[bytes]) -> dict:
    """Send the requests; the summary object plus 'statuses' (answer counts by status or error type)."""
    target = loopback_target(config.url, config.query)
    content_type = "application/json"
    if config.body_format == "safetensors":
        from toolkit.protocol.wire import MEDIA_TYPE, encode_request

        bodies, content_type = [encode_request(json.loads(body)) for body in bodies], MEDIA_TYPE
    elif config.body_format != "json":
        raise ConfigError(f"body format {config.body_format!r}: choose json or safetensors")
    payloads = [_request_bytes(target, config.api_key, body, content_type) for body in bodies]
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    started = time.perf_counter()
    counter = _Counter(config.requests, time.monotonic() + config.max_seconds)
    tls = tls_context(config.ca_file) if target.tls else None
    await asyncio.gather(*(_connection(target, payloads, counter, i, config.timeout_s, latencies, statuses, tls)
                           for i in range(config.concurrency)))
    elapsed = time.perf_counter() - started
    sent = config.requests - counter.left
    ok = statuses.get("200", 0)
    ms = np.asarray(latencies) * 1e3 if latencies else np.zeros(1)
    return {"requests": sent, "ok": ok, "errors": sent - ok, "throughput_rps": round(ok / elapsed, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "statuses": statuses, "seconds": round(elapsed, 2)}


def load_test(config: LoadTestConfig, bodies: list[bytes] | None = None) -> dict:
    """Run a load test from synchronous code (bodies default to the service's published examples)."""
    loopback_target(config.url)
    return asyncio.run(run_load(config, bodies or bodies_from_openapi(config.url, config.ca_file)))


SUMMARY_KEYS = ("requests", "ok", "errors", "throughput_rps", "p50_ms", "p95_ms", "p99_ms")


def summary(result: dict) -> dict:
    """The seven figures `cli.py loadtest` prints."""
    return {k: result[k] for k in SUMMARY_KEYS}
