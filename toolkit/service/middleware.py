"""ASGI middleware of the service: API key and rate limit on /v1/, and per-endpoint metrics of every answer."""

from __future__ import annotations

import ipaddress
import time

from toolkit.protocol import routes
from toolkit.service.auth import KeyStore, RateLimiter, bearer_token, retry_after_header
from toolkit.service.prometheus import ServiceMetrics
from toolkit.service.responses import error_response



class ApiKeyMiddleware:
    """Every /v1/ request needs a known API key (401) and a token from its key's bucket (429); an address that keeps
    presenting wrong or missing keys is refused (429 with Retry-After) before its keys are even compared."""

    def __init__(self, app, keys: KeyStore, limiter: RateLimiter, failed_logins: RateLimiter,
                 trusted_proxies: tuple = ()):
        self.app, self.keys, self.limiter, self.failed_logins = app, keys, limiter, failed_logins
        self.trusted_proxies = trusted_proxies

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(routes.API_PREFIX):
            await self.app(scope, receive, send)
            return
        address = client_address(scope, self.trusted_proxies)
        if (blocked := self.failed_logins.wait(address)) > 0:
            response = error_response(429, "too_many_failed_logins", f"too many requests without a valid API key from "
                                      f"this address; retry in {blocked:.0f} s", {"Retry-After": retry_after_header(blocked)})
            await response(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        token = bearer_token(header)
        challenge = {"WWW-Authenticate": 'Bearer realm="duet"'}
        if token is None:
            self.failed_logins.acquire(address)
            response = error_response(401, "unauthorized", "missing API key: send 'Authorization: Bearer <key>'",
                                      challenge)
        elif (name := self.keys.identify(token)) is None:
            self.failed_logins.acquire(address)
            response = error_response(401, "unauthorized", "API key not recognised", challenge)
        elif (wait := self.limiter.acquire(name)) > 0:
            response = error_response(429, "rate_limited", f"this API key's rate limit is reached; retry in "
                                      f"{wait:.2f} s", {"Retry-After": retry_after_header(wait)})
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


def client_address(scope, trusted_proxies: tuple) -> str:
    """The address a request's failed logins count against: the connection's peer; when the peer is a trusted
    proxy, the last address its X-Forwarded-For names that is not a trusted proxy itself. An X-Forwarded-For entry
    that is not an IP address is never a client's address (the peer's is used)."""
    peer = (scope.get("client") or ("unknown", 0))[0]
    if not trusted_proxies or not _within(peer, trusted_proxies):
        return peer
    forwarded = b",".join(value for name, value in scope["headers"] if name == b"x-forwarded-for")
    for hop in reversed(forwarded.decode("latin-1").split(",")):
        try:
            address = ipaddress.ip_address(hop.strip())
        except ValueError:
            return peer
        if not _within(address, trusted_proxies):
            return str(address)
    return peer


def _within(address, networks: tuple) -> bool:
    try:
        address = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(address.version == network.version and address in network for network in networks)


class EndpointLabels:
    """The route a path belongs to (its template, e.g. /v1/artifacts/{target}), or "other": a bounded set of metric
    label values, read from the app's own routes (a new endpoint is labelled without a change here)."""

    def __init__(self, route_paths: list[str]):
        self.exact = {p for p in route_paths if "{" not in p}
        self.templates = [(p.split("{")[0], p) for p in route_paths if "{" in p]

    def __call__(self, path: str) -> str:
        if path in self.exact:
            return path
        return next((template for prefix, template in self.templates if path.startswith(prefix)
                     and "/" not in path[len(prefix):]), "other")


class MetricsMiddleware:
    """Counts every answer by endpoint and status, and times it to the last byte."""

    def __init__(self, app, metrics: ServiceMetrics, route_paths: list[str]):
        self.app, self.metrics, self.label = app, metrics, EndpointLabels(route_paths)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_and_watch(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            self.metrics.record(self.label(scope["path"]), status, time.perf_counter() - started)


class HeadAsGet:
    """HEAD wherever GET is allowed: the GET answer's status and headers (Content-Length included), no body."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


MAX_HEADER_BYTES = 16 * 1024  # all of a request's header names and values together


class HeaderLimit:
    """Headers over MAX_HEADER_BYTES in total get 431. (The HTTP parser refuses larger header blocks only when they
    arrive in pieces; one that arrives in a single read would otherwise reach the app.)"""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and sum(len(k) + len(v) for k, v in scope["headers"]) > MAX_HEADER_BYTES:
            response = error_response(431, "headers_too_large", f"the request's headers exceed {MAX_HEADER_BYTES} "
                                      f"bytes in total")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
