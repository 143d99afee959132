"""The FastAPI app: manifest, artifacts, generate (micro-batched), health and metrics; `create_app(config)`."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from starlette.responses import Response

from toolkit import routes
from toolkit.cache import cache_dir
from toolkit.errors import ConfigError, ManifestError, RequestError
from toolkit.service.auth import KeyStore, RateLimiter
from toolkit.service.batching import MicroBatcher, QueueFull
from toolkit.service.config import ServiceConfig, config_from_env
from toolkit.service.downloads import Artifact, RangeNotSatisfiable, load_artifacts, parse_range
from toolkit.service.generate import GenerateJob, SchemaChecker, SlotBlob, SlotMaker
from toolkit.service.metrics import CONTENT_TYPE, ServiceMetrics
from toolkit.service.middleware import ApiKeyMiddleware, MetricsMiddleware
from toolkit.service.openapi import build_openapi, request_body_doc
from toolkit.service.responses import ApiError, ErrorBody, add_error_handlers, etag_matches, parse_body, read_body
from toolkit.slots import DTYPES

logger = logging.getLogger(__name__)

BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
DTYPE_PARAMETER = {"name": "dtype", "in": "query", "required": False,
                   "description": "dtype of the slot tensors in the response",
                   "schema": {"type": "string", "enum": list(DTYPES), "default": "float32"}}
BLOB_HEADERS = {  # sent with every generated blob
    "X-Model-Version": "hash of the run's weights that generated the slots (the manifest's model_version)",
    "X-Blob-SHA256": "sha256 (hex) of the response body",
    "X-Slot-Dtype": "dtype of the slot tensors in the blob",
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


@dataclass
class ServiceState:
    """What the handlers read; loaded once per process."""

    config: ServiceConfig
    run: Any  # toolkit.runs.Run
    manifest: dict[str, Any]
    manifest_bytes: bytes  # the manifest as served
    manifest_etag: str
    model_version: str
    artifacts: dict[str, Artifact]
    keys: KeyStore
    checker: SchemaChecker
    examples: list[dict]  # example generate bodies of test devices, published in the OpenAPI document
    static_blob: SlotBlob | None  # the benchmark's fixed answer (static_floor only)
    base_blobs: dict[str, SlotBlob]  # Base's slots per dtype: a device's fallback (GET /v1/slots/base)
    metrics: ServiceMetrics
    batcher: MicroBatcher


def load_state(config: ServiceConfig) -> ServiceState:
    """Load the run, the manifest and the artifacts, and check that they belong together (DuetError if not)."""
    import torch

    from toolkit.generation import serving_pipeline
    from toolkit.manifest import load_manifest, slot_specs_of
    from toolkit.runs import load_run

    torch.set_num_threads(config.torch_threads)
    keys = KeyStore.from_file(config.api_keys)
    run = load_run(config.run_dir, cache_dir(config.cache_dir))
    manifest = load_manifest(Path(config.exports_dir))
    check_compatible(run, manifest, config)
    artifacts = load_artifacts(Path(config.exports_dir), manifest)
    checker = SchemaChecker(run.task.request_schema())
    maker = SlotMaker(run, slot_specs_of(manifest), manifest["model_version"])
    serving_pipeline(run)  # traced now, not on the first request
    examples = [run.task.example_request(int(d)) for d in run.task.device_ids("test")[: max(config.examples, 1)]]
    for body in examples:  # the task's own examples must pass the service's checks
        checker.check(body)
    static_blob = None
    if config.static_floor:
        if not examples:
            raise ConfigError("the static floor is built from a test device's body; the run has no test device")
        static_blob = maker([GenerateJob(examples[0], "float32")])[0]
        if isinstance(static_blob, Exception):
            raise static_blob
    metrics = ServiceMetrics(manifest["model_version"], run.task.name)

    def observe(size: int, seconds: float) -> None:
        metrics.batch_size.observe(size)
        metrics.forward.observe(seconds)

    async def process(jobs: list[GenerateJob]) -> list:
        import torch

        with torch.inference_mode():  # ~10 us per request cheaper than the no_grad inside
            return maker(jobs)

    batcher = MicroBatcher(process, window_s=config.batch_window_ms / 1000.0, max_batch=config.max_batch,
                           capacity=config.queue_size, enabled=config.batching, on_batch=observe)
    manifest_bytes = json.dumps(manifest, indent=2).encode()
    return ServiceState(config, run, manifest, manifest_bytes, f'"{hashlib.sha256(manifest_bytes).hexdigest()}"',
                        manifest["model_version"], artifacts, keys, checker, examples[: config.examples],
                        static_blob, maker.base_blobs(), metrics, batcher)


def check_compatible(run, manifest: dict, config: ServiceConfig) -> None:
    """The export must come from this run: same task, same weights (model_version), same slots (names, shapes)."""
    from toolkit.manifest import model_version
    from toolkit.runs import BASE_WEIGHTS, DUET_WEIGHTS

    if manifest["task"] != run.task.name:
        raise ManifestError(f"{config.exports_dir} exports a {manifest['task']!r} model, but {config.run_dir} is a "
                            f"{run.task.name!r} run")
    expected = [(s.name, list(s.shape)) for s in run.duet.slot_specs]
    found = [(s["name"], list(s["shape"])) for s in manifest["slots"]]
    if expected != found:
        raise ManifestError(f"{config.exports_dir}: manifest slots {found} differ from the run's slots {expected}; "
                            f"export this run again")
    version = model_version(run.path / BASE_WEIGHTS, run.path / DUET_WEIGHTS)
    if manifest["model_version"] != version:
        raise ManifestError(f"{config.exports_dir} was exported from weights {manifest['model_version']}, but "
                            f"{config.run_dir} holds weights {version}; export this run again")


def create_app(config: ServiceConfig) -> FastAPI:
    """The service app of one process (loads the run and the exports now; raises DuetError if they are unusable)."""
    state = load_state(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import gc

        gc.collect()
        gc.freeze()  # the run's ~200k long-lived objects leave the GC's view: a full collection took 120 ms
        await state.batcher.start()
        try:
            yield
        finally:
            await state.batcher.stop()

    app = FastAPI(title="DUET parameter-generation service", version=state.model_version, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Generates the slot parameters of a device model from the device's recent samples. "
                              "Every /v1/ call needs 'Authorization: Bearer <API key>'.")
    app.state.duet = state
    add_error_handlers(app)
    _add_routes(app, state)
    app.add_middleware(ApiKeyMiddleware, keys=state.keys,
                       limiter=RateLimiter(config.rate_limit, config.rate_burst))
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, state.run.task.request_schema())
        return app.openapi_schema

    app.openapi = openapi
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn worker processes: the settings come from $DUET_SERVICE_CONFIG."""
    return create_app(config_from_env())


def _errors(*codes: int) -> dict:
    return {code: {"model": ErrorBody, "description": ERRORS[code]} for code in codes}


def _add_routes(app: FastAPI, state: ServiceState) -> None:
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
        return _artifact_response(request, found, state.model_version)

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
        return _blob_response(blob, state.model_version, dtype)

    @app.get(routes.BASE_SLOTS, summary="Base's slots: what a device runs before (or instead of) generated ones",
             tags=["v1"], response_class=Response,
             responses={200: {"description": "Base's slots as safetensors, in manifest order", "content": BINARY,
                              "headers": {k: {"description": v, "schema": {"type": "string"}}
                                          for k, v in BLOB_HEADERS.items()}},
                        **_errors(401, 422, 429)},
             openapi_extra={"parameters": [DTYPE_PARAMETER]})
    async def base_slots(request: Request) -> Response:
        dtype = _slot_dtype(request)
        return _blob_response(state.base_blobs[dtype], state.model_version, dtype)

    if config.static_floor:
        @app.post(routes.STATIC_FLOOR, include_in_schema=False)
        async def static(request: Request) -> Response:
            """The HTTP floor of the benchmark: generate's stack and answer size, without the generation."""
            await read_body(request, config.max_body_bytes)
            return _blob_response(state.static_blob, state.model_version, "float32")


def _check_query(request: Request, allowed: tuple[str, ...]) -> Mapping[str, str]:
    """The query parameters; 422 for one the endpoint does not take (a typo like ?dtyp= must not pass silently).
    Most calls send none: then nothing is parsed."""
    if not request.scope.get("query_string"):
        return {}
    params = request.query_params
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


def _blob_response(blob: SlotBlob, model_version: str, dtype: str) -> Response:
    return Response(blob.data, media_type="application/octet-stream",
                    headers={"X-Model-Version": model_version, "X-Blob-SHA256": blob.sha256, "X-Slot-Dtype": dtype,
                             "Cache-Control": "no-store"})


def _artifact_response(request: Request, artifact: Artifact, model_version: str) -> Response:
    size = len(artifact.data)
    headers = {"ETag": artifact.etag, "X-Artifact-SHA256": artifact.sha256, "Accept-Ranges": "bytes",
               "X-Model-Version": model_version, "Content-Disposition": f'attachment; filename="{artifact.filename}"'}
    if etag_matches(request.headers.get("if-none-match"), artifact.etag):
        return Response(status_code=304, headers=headers)
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != artifact.etag:
        wanted = None  # the client's partial copy is of another version: send it all
    try:
        span = parse_range(wanted, size)
    except RangeNotSatisfiable as err:
        raise ApiError(416, "range_not_satisfiable", str(err), {"Content-Range": f"bytes */{size}"}) from None
    if span is None:
        return Response(artifact.data, headers=headers, media_type="application/octet-stream")
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return Response(artifact.data[start:end], 206, headers=headers, media_type="application/octet-stream")
