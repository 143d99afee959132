"""The compact binary generate body: a safetensors file whose tensors are the request's array fields and whose
metadata holds its string fields (e.g. `items` I64 [n], `timestamps` I64 [n], metadata `device_id`).

Task-agnostic: any JSON generate body of numbers, lists of numbers and strings maps to it and back. The
decoder is strict (it reads untrusted bytes): every malformed body raises WireError naming what is wrong.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Mapping

import numpy as np
import orjson

from toolkit.errors import DuetError
from toolkit.protocol.safetensors_io import write_safetensors

MEDIA_TYPE = "application/octet-stream"
BODY_FORMATS = ("json", "safetensors")  # how a generate body can be sent: JSON, or this module's binary form
DTYPES = {"I32": np.dtype("<i4"), "I64": np.dtype("<i8"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8")}
MAX_HEADER_BYTES = 64 * 1024  # far more than a request's few tensor entries need
MAX_DIMS = 4


class WireError(DuetError):
    """A binary generate body that is not the safetensors this service reads."""


def encode_request(body: Mapping[str, Any]) -> bytes:
    """A JSON generate body as the binary form: strings go to the metadata, lists of numbers to tensors (integers as
    I32, or I64 beyond its range; other numbers as F32)."""
    metadata: dict[str, str] = {}
    arrays: dict[str, np.ndarray] = {}
    for name, value in body.items():
        if isinstance(value, str):
            metadata[name] = value
        else:
            array = np.asarray(value)
            if array.dtype.kind in "iu":
                fits = array.size == 0 or (array.min() >= -2**31 and array.max() < 2**31)
                arrays[name] = array.astype("<i4" if fits else "<i8")
            elif array.dtype.kind == "f":
                arrays[name] = array.astype("<f4")
            else:
                raise WireError(f"field {name!r} is neither a string nor numbers ({array.dtype})")
    return write_safetensors([(name, next(k for k, v in DTYPES.items() if v == array.dtype), array.shape,
                               array.tobytes()) for name, array in arrays.items()], metadata)


def decode_request(raw: bytes) -> dict[str, Any]:
    """{field: read-only numpy array, or str from the metadata} of a binary generate body (WireError if malformed)."""
    if len(raw) < 8:
        raise WireError(f"the body has {len(raw)} bytes; a safetensors body starts with an 8-byte header length")
    (size,) = struct.unpack_from("<Q", raw)
    if size > min(len(raw) - 8, MAX_HEADER_BYTES):
        raise WireError(f"the safetensors header length {size} exceeds the body or {MAX_HEADER_BYTES} bytes")
    try:
        header = orjson.loads(raw[8 : 8 + size])
    except orjson.JSONDecodeError as err:
        raise WireError(f"the safetensors header is not valid JSON: {err}") from None
    if not isinstance(header, dict):
        raise WireError("the safetensors header must be a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise WireError("'__metadata__' must map names to strings")
    data = memoryview(raw)[8 + size :]
    fields: dict[str, Any] = dict(metadata)
    spans = []
    for name, entry in header.items():
        if name in fields:
            raise WireError(f"{name!r} is both a tensor and a metadata entry")
        dtype, shape, start, end = _entry(name, entry, len(data), len(raw))
        spans.append((start, end, name))
        fields[name] = np.frombuffer(data, dtype, count=math.prod(shape), offset=start).reshape(shape)
    position = 0
    for start, end, name in sorted(spans):
        if start != position:
            raise WireError(f"tensor {name!r} starts at byte {start}; the tensors must fill the data in order")
        position = end
    if position != len(data):
        raise WireError(f"the tensors cover {position} of the {len(data)} data bytes")
    return fields


def _entry(name: str, entry: Any, data_size: int, body_size: int) -> tuple[np.dtype, tuple[int, ...], int, int]:
    if not isinstance(entry, dict):
        raise WireError(f"tensor {name!r}: its header entry must be an object")
    dtype = DTYPES.get(entry.get("dtype"))  # type: ignore[arg-type]
    if dtype is None:
        raise WireError(f"tensor {name!r}: dtype {entry.get('dtype')!r} is not one of {', '.join(DTYPES)}")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if (not isinstance(shape, list) or len(shape) > MAX_DIMS
            or not all(type(n) is int and n >= 0 for n in shape)):
        raise WireError(f"tensor {name!r}: shape must be a list of at most {MAX_DIMS} non-negative integers")
    if math.prod(n for n in shape if n) > body_size:  # checked before any allocation: an empty tensor of shape
        # [2**62, 0] holds no byte, but numpy cannot even describe it
        raise WireError(f"tensor {name!r}: shape {shape} is larger than the whole {body_size}-byte body")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(n) is int for n in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size):
        raise WireError(f"tensor {name!r}: data_offsets must be [start, end] within the {data_size} data bytes")
    start, end = offsets
    if end - start != math.prod(shape) * dtype.itemsize:
        raise WireError(f"tensor {name!r}: {end - start} bytes do not hold {dtype.name} of shape {shape}")
    return dtype, tuple(shape), start, end
