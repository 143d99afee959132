"""What one generate request costs the service: schema check, the task's validation, the generator, safetensors."""

from __future__ import annotations

import hashlib
import logging
import struct
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from toolkit.errors import RequestError, SlotShapeError
from toolkit.protocol.signing import sign
from toolkit.protocol.slots import DTYPES, SlotSpec, encode_safetensors

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
    signature: str = ""  # base64 Ed25519 signature of `data` when the service signs (serve --signing-key)


class SchemaChecker:
    """The task's request schema, compiled once; `check` (a JSON body) and `check_binary` (the fields of a binary
    body) raise RequestError naming the first violation."""

    def __init__(self, schema: Mapping[str, Any]):
        import jsonschema_rs

        self._validator = jsonschema_rs.validator_for(dict(schema))
        self._properties = dict(schema.get("properties", {}))
        self._required = list(schema.get("required", []))
        self._closed = schema.get("additionalProperties") is False
        self._arrays = {name for name, prop in self._properties.items() if prop.get("type") == "array"}
        self._strings = {name: jsonschema_rs.validator_for(dict(prop)) for name, prop in self._properties.items()
                         if name not in self._arrays}

    def check(self, body: Any) -> None:
        if self._validator.is_valid(body):
            return
        error = next(iter(self._validator.iter_errors(body)))
        where = "/".join(str(p) for p in error.instance_path)
        raise RequestError(f"{where or 'body'}: {error.message}")

    def check_binary(self, fields: Mapping[str, Any]) -> None:
        """What the schema says about a binary body's fields: none unknown or missing, array fields as tensors,
        the others as metadata strings that satisfy their schema. The task checks the tensors' values."""
        unknown = sorted(name for name in fields if name not in self._properties) if self._closed else []
        if unknown:
            raise RequestError(f"unknown field {unknown[0]!r}; the body takes {', '.join(self._properties)}")
        missing = [name for name in self._required if name not in fields]
        if missing:
            raise RequestError(f"'{missing[0]}' is required")
        for name, value in fields.items():
            if name in self._properties and (name in self._arrays) != isinstance(value, np.ndarray):
                where = "a tensor" if name in self._arrays else "a string in '__metadata__'"
                raise RequestError(f"'{name}' must be {where} in a binary body")
            validator = self._strings.get(name)
            if validator is not None and not validator.is_valid(value):
                error = next(iter(validator.iter_errors(value)))
                raise RequestError(f"{name}: {error.message}")


class SlotMaker:
    """Turns a batch of generate bodies into slot blobs with ONE generator forward (the micro-batch function).

    The task validates the whole batch first; only when that fails is each body validated on its own, so
    one bad body gets its own RequestError and the others are still generated together.
    """

    def __init__(self, run, programs, specs: list[SlotSpec], model_version: str, signing_key: Any = None):
        self.run, self.programs, self.specs = run, programs, specs  # programs: the run's serving.ServingPrograms
        self.encoder = BlobEncoder(specs, {"model_version": model_version, "task": run.task.name}, signing_key)

    def base_blobs(self) -> dict[str, SlotBlob]:
        """Base's slots (the shared head the generator writes its residual on; what a device runs before it has
        generated slots, or when they are refused) as a blob per dtype."""
        from toolkit.model.slots import base_slot_values

        head = {name: values[None] for name, values in base_slot_values(self.run.duet).items()}
        blobs = {}
        for dtype in DTYPES:
            (blob,) = self.encoder.encode_batch(head, [dtype])
            if isinstance(blob, SlotShapeError):
                raise blob
            blobs[dtype] = blob
        return blobs

    def __call__(self, jobs: list[GenerateJob]) -> list[SlotBlob | Exception]:
        import torch

        results: list[SlotBlob | Exception | None] = [None] * len(jobs)
        valid = list(range(len(jobs)))
        task = self.run.task
        try:
            inputs = task.request_inputs([job.body for job in jobs])
        except RequestError:
            valid, parts = [], []
            for i, job in enumerate(jobs):
                try:
                    parts.append(task.request_inputs([job.body]))
                    valid.append(i)
                except RequestError as err:
                    results[i] = err
            inputs = tuple(torch.cat(column) for column in zip(*parts)) if parts else None
        if inputs is not None:
            batch = self.programs.request_slot_batch(inputs)
            dtypes = [jobs[i].dtype for i in valid]
            for i, blob in zip(valid, self.encoder.encode_batch(batch, dtypes)):
                if isinstance(blob, SlotShapeError):  # non-finite generated values: a model problem, a 500
                    logger.error("generated slots failed their check: %s", blob)
                results[i] = blob
        return results


class BlobEncoder:
    """Exactly `encode_safetensors`'s bytes, faster: the header depends only on the specs, the dtype and the
    metadata, so it is built once per dtype by `encode_safetensors` itself; a batch's slots are cast and
    checked once per slot array, and each device's blob is its header joined with its rows (one copy)."""

    def __init__(self, specs: list[SlotSpec], metadata: Mapping[str, str], signing_key: Any = None):
        self.specs, self.signing_key = specs, signing_key
        zeros = {spec.name: np.zeros(spec.shape, np.float32) for spec in specs}
        self.headers = {}
        for dtype in DTYPES:
            template = encode_safetensors(specs, zeros, dtype, metadata)
            (size,) = struct.unpack("<Q", template[:8])
            self.headers[dtype] = template[: 8 + size]

    def encode_batch(self, batch: Mapping[str, np.ndarray], dtypes: list[str]) -> list[SlotBlob | SlotShapeError]:
        """One blob per row of `batch` ({slot name: (B, *shape)}) in that row's dtype, or the SlotShapeError
        that row's values earn (NaN or infinity, also after the cast); a wrong shape or dtype name raises."""
        for dtype in set(dtypes):
            if dtype not in self.headers:
                raise SlotShapeError(f"unsupported slot dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
        rows = len(dtypes)
        for spec in self.specs:
            shape = tuple(np.shape(batch[spec.name]))
            if shape != (rows, *spec.shape):
                raise SlotShapeError(f"slot {spec.name!r} should have shape {list(spec.shape)}, "
                                     f"got {list(shape[1:])}")
        results: list[SlotBlob | SlotShapeError] = [None] * rows  # type: ignore[list-item]
        for dtype in set(dtypes):
            wire = np.dtype(DTYPES[dtype]).newbyteorder("<")
            with np.errstate(over="ignore"):  # overflow to float16 infinity is caught below
                # (rows, numel) per slot, C-contiguous; no copy when the slots already are little-endian fp32
                arrays = [np.ascontiguousarray(batch[spec.name], dtype=wire).reshape(rows, -1) for spec in self.specs]
            finite = np.logical_and.reduce([np.isfinite(a).all(axis=1) for a in arrays])
            header = self.headers[dtype]
            for row in (r for r in range(rows) if dtypes[r] == dtype):
                if not finite[row]:
                    results[row] = SlotShapeError(f"generated slots hold NaN or infinite values as {dtype}")
                    continue
                data = b"".join([header, *(a[row].data for a in arrays)])  # one copy: header, then each slot
                results[row] = SlotBlob(data, hashlib.sha256(data).hexdigest(),
                                        sign(self.signing_key, data) if self.signing_key is not None else "")
        return results
