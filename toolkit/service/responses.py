"""HTTP answers of the service: the one JSON error shape, its handlers, the size-limited body and its parsing."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import numpy as np

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from toolkit.protocol.wire import MEDIA_TYPE as WIRE_TYPE
from toolkit.protocol.wire import WireError, decode_request

logger = logging.getLogger(__name__)

JSON_TYPES = ("application/json",)
MAX_JSON_DEPTH = 64  # nesting levels of a JSON body (a generate body needs 2; the schema checker recurses per level)
_JSON_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)  # strings may hold brackets that nest nothing


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: a machine-readable code and a sentence saying what is wrong."""

    error: str
    message: str


class ApiError(Exception):
    """An answer other than success, raised anywhere in a handler."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


MAX_MESSAGE = 500  # characters of an error message: a bad value is quoted by its beginning, never whole


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 30] + f"... ({len(message)} characters)"
    body = json.dumps({"error": code, "message": message}).encode()
    return Response(body, status, headers=headers, media_type="application/json")


def add_error_handlers(app: FastAPI) -> None:
    """Every error, the framework's own included, leaves as ErrorBody JSON; no stack trace reaches a client."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> Response:
        return error_response(err.status, err.code, err.message, err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = {404: f"no route {request.url.path}",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(err.status_code, str(err.detail))
        return error_response(err.status_code, codes.get(err.status_code, "http_error"), message,
                              dict(err.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> Response:
        problems = "; ".join(f"{'/'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
                             for e in err.errors())
        return error_response(422, "invalid_request", problems or "invalid request")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> Response:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "unexpected server error; the server log has details")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes, and with 415 when it
    comes in a content coding (gzip, ...): the service reads bodies as sent (RFC 9110 §15.5.16)."""
    coding = request.headers.get("content-encoding", "").strip().lower()
    if coding not in ("", "identity"):
        raise ApiError(415, "unsupported_content_encoding", f"Content-Encoding {coding[:40]!r} is not accepted; send "
                       f"the body uncompressed", {"Accept-Encoding": "identity"})
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "bad_request", f"Content-Length {declared!r} is not a byte count")
        if int(declared) > limit:
            raise ApiError(413, "body_too_large", f"the body has {int(declared)} bytes; at most {limit} are accepted")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "body_too_large", f"the body exceeds {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:  # the client's doing: a 4xx in the metrics, one quiet line, no traceback
        logger.info("client hung up after %d bytes of %s", size, declared or "a chunked body")
        raise ApiError(400, "client_disconnected", f"the connection closed after {size} bytes of the body") from None
    return b"".join(chunks)


def parse_body(raw: bytes, content_type: str | None) -> tuple[Any, bool]:
    """(the body, whether it came in the binary form): JSON, or the safetensors body of `toolkit.protocol.wire`; 415 for
    another Content-Type, 400 unless it parses."""
    import orjson  # 3x faster than json on these bodies; refuses NaN, Infinity and integers beyond 64 bits

    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type == WIRE_TYPE:
        try:
            return decode_request(raw), True
        except WireError as err:
            raise ApiError(400, "bad_body", f"the body is not a valid binary request: {err}") from None
    if media_type not in JSON_TYPES:
        raise ApiError(415, "unsupported_media_type", f"send the body as application/json or {WIRE_TYPE} "
                                                      f"(Content-Type was {media_type or 'missing'})")
    if not raw:
        raise ApiError(400, "bad_json", "the body is empty; send a JSON object")
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise ApiError(400, "bad_json", f"the body is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return orjson.loads(raw), False
    except (ValueError, RecursionError) as err:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {err}") from None


def json_depth(raw: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest, or (when it has at most MAX_JSON_DEPTH brackets) a
    bound on it: a body with few brackets costs two byte counts. Any text gives a number; strings do not count."""
    brackets = raw.count(b"[") + raw.count(b"{")
    if brackets <= MAX_JSON_DEPTH:
        return brackets
    codes = np.frombuffer(_JSON_STRINGS.sub(b'""', raw), np.uint8)
    steps = np.isin(codes, (ord("["), ord("{"))).astype(np.int32) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (or '*')."""
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags
