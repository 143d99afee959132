"""What one generate request costs the service: schema check, the task's validation, the generator, safetensors."""

from __future__ import annotations

import hashlib
import logging
import struct
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from toolkit.errors import RequestError, SlotShapeError
from toolkit.slots import DTYPES, SlotSpec, encode_safetensors

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerateJob:
    """One validated-by-schema generate body and the dtype its slots are sent in."""

    body: Mapping[str, Any]  # the request's JSON object
    dtype: str  # "float32" or "float16"


@dataclass(frozen=True)
class SlotBlob:
    """A device's slots as served: safetensors bytes and their sha256."""

    data: bytes  # safetensors, slots in manifest order
    sha256: str  # hex digest of `data`


class SchemaChecker:
    """The task's request schema, compiled once; `check` raises RequestError naming the first violation."""

    def __init__(self, schema: Mapping[str, Any]):
        import jsonschema_rs

        self._validator = jsonschema_rs.validator_for(dict(schema))

    def check(self, body: Any) -> None:
        if self._validator.is_valid(body):
            return
        error = next(iter(self._validator.iter_errors(body)))
        where = "/".join(str(p) for p in error.instance_path)
        raise RequestError(f"{where or 'body'}: {error.message}")


class SlotMaker:
    """Turns a batch of generate bodies into slot blobs with ONE generator forward (the micro-batch function).

    The task validates the whole batch first; only when that fails is each body validated on its own, so
    one bad body gets its own RequestError and the others are still generated together.
    """

    def __init__(self, run, specs: list[SlotSpec], model_version: str):
        self.run, self.specs = run, specs
        self.encoder = BlobEncoder(specs, {"model_version": model_version, "task": run.task.name})

    def __call__(self, jobs: list[GenerateJob]) -> list[SlotBlob | Exception]:
        from toolkit.generation import slots_for_request

        results: list[SlotBlob | Exception | None] = [None] * len(jobs)
        valid = list(range(len(jobs)))
        try:
            generated = slots_for_request(self.run, [jobs[i].body for i in valid])
        except RequestError:
            valid = []
            for i, job in enumerate(jobs):
                try:
                    self.run.task.request_context(self.run.duet, [job.body])
                    valid.append(i)
                except RequestError as err:
                    results[i] = err
            generated = slots_for_request(self.run, [jobs[i].body for i in valid]) if valid else []
        for i, slots in zip(valid, generated):
            try:
                results[i] = self.encoder.encode(slots, jobs[i].dtype)
            except SlotShapeError as err:  # non-finite generated values: a model problem, answered as a 500
                logger.error("generated slots failed their check: %s", err)
                results[i] = err
        return results


class BlobEncoder:
    """Exactly `encode_safetensors`'s bytes, faster: the header depends only on the specs, the dtype and the
    metadata, so it is built once per dtype by `encode_safetensors` itself; each blob then costs one copy."""

    def __init__(self, specs: list[SlotSpec], metadata: Mapping[str, str]):
        self.specs = specs
        zeros = {spec.name: np.zeros(spec.shape, np.float32) for spec in specs}
        self.headers = {}
        for dtype in DTYPES:
            template = encode_safetensors(specs, zeros, dtype, metadata)
            (size,) = struct.unpack("<Q", template[:8])
            self.headers[dtype] = template[: 8 + size]

    def encode(self, slots: Mapping[str, np.ndarray], dtype: str) -> SlotBlob:
        if dtype not in self.headers:
            raise SlotShapeError(f"unsupported slot dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
        wire = np.dtype(DTYPES[dtype]).newbyteorder("<")
        parts = [self.headers[dtype]]
        for spec in self.specs:
            with np.errstate(over="ignore"):  # overflow to float16 infinity is caught below
                value = np.ascontiguousarray(slots[spec.name], dtype=wire)
            if value.shape != spec.shape:
                raise SlotShapeError(f"slot {spec.name!r} should have shape {list(spec.shape)}, "
                                     f"got {list(value.shape)}")
            parts.append(value.tobytes())
        data = b"".join(parts)
        if not np.isfinite(np.frombuffer(data, wire, offset=len(parts[0]))).all():
            raise SlotShapeError(f"generated slots hold NaN or infinite values as {dtype}")
        return SlotBlob(data, hashlib.sha256(data).hexdigest())
