"""The service's endpoints: manifest, artifacts, generate (micro-batched), Base's slots, health and metrics."""

from __future__ import annotations

import logging
import os
from collections import Counter
from typing import Any, Mapping

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from starlette.responses import Response

from toolkit.protocol import routes
from toolkit.errors import RequestError
from toolkit.service.batching import QueueFull
from toolkit.service.downloads import artifact_response
from toolkit.service.openapi import request_body_doc
from toolkit.service.prometheus import CONTENT_TYPE
from toolkit.service.responses import ApiError, ErrorBody, etag_matches, parse_body, read_body
from toolkit.service.slot_maker import GenerateJob, SlotBlob
from toolkit.service.state import ServiceState
from toolkit.protocol.signing import SIGNATURE_HEADER
from toolkit.protocol.slots import DTYPES

logger = logging.getLogger(__name__)

BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
DTYPE_PARAMETER = {"name": "dtype", "in": "query", "required": False,
                   "description": "dtype of the slot tensors in the response",
                   "schema": {"type": "string", "enum": list(DTYPES), "default": "float32"}}
BLOB_HEADERS = {  # sent with every generated blob
    "X-Model-Version": "hash of the run's weights that generated the slots (the manifest's model_version)",
    "X-Blob-SHA256": "sha256 (hex) of the response body",
    "X-Slot-Dtype": "dtype of the slot tensors in the blob",
    "X-Blob-Signature": "base64 Ed25519 signature of the body, when the service signs (the manifest's signing key)",
}
ERRORS = {
    400: "the body is not valid JSON",
    401: "missing or unknown API key",
    404: "no such target",
    413: "the body is larger than the service accepts",
    415: "the body is not application/json",
    416: "the byte range lies outside the artifact",
    422: "the body or a parameter is invalid (the message says which and why)",
    429: "this API key's rate limit is reached (see Retry-After)",
    503: "the generate queue is full (see Retry-After)",
}


def _errors(*codes: int) -> dict:
    return {code: {"model": ErrorBody, "description": ERRORS[code]} for code in codes}


def add_routes(app: FastAPI, state: ServiceState) -> None:
    """Every endpoint of the service, reading `state`; the OpenAPI document is built from these declarations."""
    config = state.config
    targets = sorted(state.artifacts)

    @app.get(routes.HEALTH, summary="Liveness and the model version", tags=["ops"])
    async def healthz() -> dict:
        return {"status": "ok", "model_version": state.model_version, "pending": state.batcher.pending,
                "worker": os.getpid()}

    @app.get(routes.METRICS, summary="Prometheus metrics of this process", tags=["ops"], response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def metrics() -> Response:
        state.metrics.queue.set(state.batcher.pending)
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    @app.get(routes.MANIFEST, summary="The export's manifest", tags=["v1"], response_class=Response,
             responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}},
                        304: {"description": "If-None-Match named the manifest's ETag"}, **_errors(401, 422, 429)})
    async def manifest(request: Request) -> Response:
        _check_query(request, ())
        headers = {"ETag": state.manifest_etag, "X-Model-Version": state.model_version, "Cache-Control": "no-cache"}
        if etag_matches(request.headers.get("if-none-match"), state.manifest_etag):
            return Response(status_code=304, headers=headers)
        return Response(state.manifest_bytes, headers=headers, media_type="application/json")

    @app.get(routes.ARTIFACT_ROUTE, summary="A device program file (an .mlpackage is sent as a zip)",
             tags=["v1"], response_class=Response,
             responses={200: {"content": BINARY}, 206: {"description": "the byte range asked for", "content": BINARY},
                        304: {"description": "If-None-Match named the artifact's ETag"},
                        **_errors(401, 404, 416, 422, 429)})
    async def artifact(request: Request, target: str = PathParam(description=f"one of: {', '.join(targets)}",
                                                                 examples=targets)) -> Response:
        _check_query(request, ())
        found = state.artifacts.get(target)
        if found is None:
            raise ApiError(404, "unknown_target", f"no artifact {target!r}; this export has {', '.join(targets)}")
        return artifact_response(request, found, state.model_version)

    @app.post(routes.GENERATE, summary="Slots generated from one device's recent samples", tags=["v1"],
              response_class=Response,
              responses={200: {"description": "the device's slots as safetensors, in manifest order",
                               "content": BINARY,
                               "headers": {k: {"description": v, "schema": {"type": "string"}}
                                           for k, v in BLOB_HEADERS.items()}},
                         **_errors(400, 401, 413, 415, 422, 429, 503)},
              openapi_extra={"requestBody": request_body_doc(state.examples), "parameters": [DTYPE_PARAMETER]})
    async def generate(request: Request) -> Response:
        # read here: FastAPI's parameter machinery cost more per request than the rest of this handler
        dtype = _slot_dtype(request)
        body, binary = parse_body(await read_body(request, config.max_body_bytes), request.headers.get("content-type"))
        _check_body(state, body, binary)
        try:
            blob = await state.batcher.submit(GenerateJob(body, dtype))
        except QueueFull as err:
            state.metrics.rejected.inc("queue_full")
            raise ApiError(503, "overloaded", f"{err}; retry later", {"Retry-After": "1"}) from None
        except RequestError as err:
            raise ApiError(422, "invalid_request", str(err)) from None
        except Exception as err:  # a model fault, not the caller's: logged, answered without details
            logger.error("generation failed: %s", err)
            raise ApiError(500, "internal_error", "slot generation failed; the server log has details") from None
        return _blob_response(state, blob, dtype)

    @app.get(routes.BASE_SLOTS, summary="Base's slots: what a device runs before (or instead of) generated ones",
             tags=["v1"], response_class=Response,
             responses={200: {"description": "Base's slots as safetensors, in manifest order", "content": BINARY,
                              "headers": {k: {"description": v, "schema": {"type": "string"}}
                                          for k, v in BLOB_HEADERS.items()}},
                        **_errors(401, 422, 429)},
             openapi_extra={"parameters": [DTYPE_PARAMETER]})
    async def base_slots(request: Request) -> Response:
        dtype = _slot_dtype(request)
        return _blob_response(state, state.base_blobs[dtype], dtype)

    if config.static_floor:
        @app.post(routes.STATIC_FLOOR, include_in_schema=False)
        async def static(request: Request) -> Response:
            """The HTTP floor of the benchmark: generate's stack and answer size, without the generation."""
            await read_body(request, config.max_body_bytes)
            return _blob_response(state, state.static_blob, "float32")


def _check_query(request: Request, allowed: tuple[str, ...]) -> Mapping[str, str]:
    """The query parameters; 422 for one the endpoint does not take (a typo like ?dtyp= must not pass silently).
    Most calls send none: then nothing is parsed."""
    if not request.scope.get("query_string"):
        return {}
    params = request.query_params
    repeated = sorted(name for name, count in Counter(name for name, _ in params.multi_items()).items() if count > 1)
    if repeated:
        raise ApiError(422, "invalid_request", f"query parameter {', '.join(map(repr, repeated))} given more than once")
    unknown = sorted({name for name in params if name not in allowed})
    if unknown:
        takes = f"it takes {', '.join(allowed)}" if allowed else "it takes none"
        raise ApiError(422, "invalid_request", f"unknown query parameter {', '.join(map(repr, unknown))}; {takes}")
    return params


def _slot_dtype(request: Request) -> str:
    """The ?dtype= of a slot answer (float32 by default); 422 for another parameter or dtype."""
    dtype = _check_query(request, ("dtype",)).get("dtype", "float32")
    if dtype not in DTYPES:
        raise ApiError(422, "invalid_request", f"query parameter dtype={dtype!r}: choose one of {', '.join(DTYPES)}")
    return dtype


def _check_body(state: ServiceState, body: Any, binary: bool = False) -> None:
    """422 unless the body (or a binary body's fields) satisfies the task's schema; the task's own words are used
    when it has them."""
    try:
        if binary:
            state.checker.check_binary(body)
        else:
            state.checker.check(body)
    except RequestError as err:
        message = str(err)
        if isinstance(body, dict):
            try:  # e.g. "'items[3]' = 99999 is unknown item id (valid: 1..3061)" beats "greater than the maximum"
                state.run.task.request_inputs([body])
            except RequestError as task_err:
                message = str(task_err)
            except Exception:  # the schema already refused it; a task that trips on odd input keeps the schema's words
                pass
        raise ApiError(422, "invalid_request", message) from None


def _blob_response(state: ServiceState, blob: SlotBlob, dtype: str) -> Response:
    headers = {"X-Model-Version": state.model_version, "X-Blob-SHA256": blob.sha256, "X-Slot-Dtype": dtype,
               "Cache-Control": "no-store"}
    if blob.signature:  # signed where the blob was made (SlotMaker), once per blob
        headers[SIGNATURE_HEADER] = blob.signature
    return Response(blob.data, media_type="application/octet-stream", headers=headers)
