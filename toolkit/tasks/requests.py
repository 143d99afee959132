"""The generate request of any task, derived from its context samples' specs: the JSON Schema, the validation of
bodies into right-aligned tensors and a mask, and example bodies.

A body is {"device_id": "...", FIELD: [sample, ...], ...}: one array per field of the samples, oldest first, the
same number of samples in each (at most the context size M). A sample of a scalar field is a number; of an array
field, its values row-major flattened. Binary bodies (toolkit.protocol.wire) carry the same fields as tensors of
(n,) or (n, values per sample).
"""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from toolkit.errors import RequestError

if TYPE_CHECKING:
    from toolkit.tasks.base import SampleSpec, Samples, Task

SPEC_DEVICES = 256  # training devices whose contexts set an integer field's default range
INT_LIMIT = 2**62  # integers beyond this are refused (and no int64 arithmetic on them overflows)


def specs_from_data(task: "Task") -> list["SampleSpec"]:
    """Each context field's spec read off the data: per-sample shape and dtype; the range of an integer field is what
    up to SPEC_DEVICES training devices' contexts hold (ids beyond what the model saw are refused)."""
    from toolkit.tasks.base import SampleSpec

    devices = task.devices("train")[:SPEC_DEVICES]
    samples = task.context(devices, "train")
    present = samples.mask.bool()
    specs = []
    for name, values in samples.fields.items():
        shape = tuple(int(s) for s in values.shape[2:])
        if values.is_floating_point():
            specs.append(SampleSpec(name, shape, "float32"))
            continue
        seen = values[present]
        low, high = (int(seen.min()), int(seen.max())) if seen.numel() else (0, 0)
        specs.append(SampleSpec(name, shape, "int64", low, high))
    return specs


def _number_schema(spec: "SampleSpec") -> dict:
    schema: dict[str, Any] = {"type": "integer" if spec.is_integer else "number"}
    if spec.minimum is not None:
        schema["minimum"] = spec.minimum
    if spec.maximum is not None:
        schema["maximum"] = spec.maximum
    return schema


def request_schema(specs: Sequence["SampleSpec"], size: int) -> dict:
    """JSON Schema of one body: device_id and one array of at most `size` samples per field."""
    properties: dict[str, Any] = {"device_id": {"type": "string", "minLength": 1, "maxLength": 128}}
    for spec in specs:
        item = _number_schema(spec)
        if spec.shape:
            item = {"type": "array", "minItems": spec.numel, "maxItems": spec.numel, "items": item}
        description = spec.description or (f"the device's most recent samples' {spec.name}, oldest first" +
                                            (f", each {'x'.join(map(str, spec.shape))} values row-major flattened to "
                                             f"{spec.numel} numbers" if spec.shape else ""))
        properties[spec.name] = {"type": "array", "minItems": 1, "maxItems": size, "items": item,
                                 "description": description}
    return {"type": "object", "additionalProperties": False, "required": ["device_id", *(s.name for s in specs)],
            "properties": properties}


def request_inputs(payloads: Sequence[Mapping[str, Any]], specs: Sequence["SampleSpec"],
                   size: int) -> tuple[torch.Tensor, ...]:
    """(each field (B, size, *shape), mask (B, size) bool): every payload's samples validated, right-aligned and
    left-padded with zeros. RequestError names the first bad field, sample or value."""
    fields, counts = [], None
    for spec in specs:
        values, lengths = _field(payloads, spec, size)
        if counts is None:
            counts = lengths
        elif not np.array_equal(lengths, counts):
            row = int(np.flatnonzero(lengths != counts)[0])
            raise RequestError(f"'{spec.name}' has {lengths[row]} samples but '{specs[0].name}' has {counts[row]}")
        fields.append(values)
    counts = np.zeros(len(payloads), np.int64) if counts is None else counts
    mask = np.arange(size) >= (size - counts)[:, None]
    return (*(torch.from_numpy(values) for values in fields), torch.from_numpy(mask))


def _field(payloads: Sequence[Mapping[str, Any]], spec: "SampleSpec", size: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, size, *shape) values of one field, right-aligned, and each payload's sample count."""
    dtype = np.int64 if spec.is_integer else np.float32
    lists = [payload.get(spec.name) for payload in payloads]
    flat = _checked_batch(lists, spec, size)
    if flat is None:  # the slow path raises the RequestError that names the problem
        lists = [_checked_list(payload, spec, size) for payload in payloads]
        flat = np.array(list(chain.from_iterable(lists)), dtype=np.float64 if not spec.is_integer else np.int64)
        flat = flat.reshape(-1, spec.numel)
    lengths = np.fromiter(map(len, lists), np.int64, len(lists))
    out = np.zeros((len(payloads), size, spec.numel), dtype)
    # row-major order of the right-aligned cells is the order of the concatenated lists
    out[np.arange(size) >= (size - lengths)[:, None]] = flat.reshape(-1, spec.numel)
    return out.reshape(len(payloads), size, *spec.shape), lengths


def _in_range(array: np.ndarray, spec: "SampleSpec") -> bool:
    if not spec.is_integer and not np.isfinite(array).all():
        return False
    low = spec.minimum if spec.minimum is not None else (-INT_LIMIT if spec.is_integer else -np.inf)
    high = spec.maximum if spec.maximum is not None else (INT_LIMIT if spec.is_integer else np.inf)
    return not array.size or (array.min() >= low and array.max() <= high)


def _checked_batch(lists: list[Any], spec: "SampleSpec", size: int) -> np.ndarray | None:
    """All payloads' samples as one (n, values per sample) array when every payload's field is well-formed and in
    range (one type scan, one array, one range check); None when anything is off."""
    width = spec.numel
    if all(type(values) is list and 0 < len(values) <= size for values in lists):
        samples = list(chain.from_iterable(lists))
        if spec.shape:
            if not all(type(s) is list and len(s) == width for s in samples):
                return None
            samples = list(chain.from_iterable(samples))
        kinds = set(map(type, samples))
        if not kinds <= ({int} if spec.is_integer else {int, float}):
            return None
        try:
            array = np.array(samples, dtype=np.int64 if spec.is_integer else np.float64)
        except OverflowError:
            return None
    elif all(type(values) is np.ndarray and _tensor_shape_ok(values, spec) and 0 < len(values) <= size
             for values in lists):
        array = np.concatenate([values.reshape(len(values), -1) for values in lists]).astype(
            np.int64 if spec.is_integer else np.float64, copy=False)
    else:
        return None
    return array.reshape(-1, width) if _in_range(array, spec) else None


def _tensor_shape_ok(values: np.ndarray, spec: "SampleSpec") -> bool:
    kind_ok = values.dtype.kind == "i" if spec.is_integer else values.dtype.kind == "f"
    shape_ok = values.ndim == 1 if not spec.shape else (values.ndim == 2 and values.shape[1] == spec.numel)
    return kind_ok and shape_ok


def _checked_list(payload: Mapping[str, Any], spec: "SampleSpec", size: int) -> list:
    """One payload's samples of a field, each a value or a list of values, or the RequestError that says what is
    wrong."""
    key, width = spec.name, spec.numel
    value = payload.get(key)
    what = "integer" if spec.is_integer else "number"
    if isinstance(value, np.ndarray):  # from a binary body
        if not _tensor_shape_ok(value, spec):
            expected = f"an (n, {width})" if spec.shape else "a 1-D"
            kind = "integer tensor (I32 or I64)" if spec.is_integer else "float tensor (F32 or F64)"
            raise RequestError(f"'{key}' must be {expected} {kind}, got {value.dtype} of shape {list(value.shape)}")
        value = value.tolist()
    if not isinstance(value, list):
        raise RequestError(f"'{key}' must be a list of samples")
    if not value:
        raise RequestError(f"'{key}' is empty; send at least one sample")
    if len(value) > size:
        raise RequestError(f"'{key}' has {len(value)} samples; at most {size} are read")
    checked = []
    for i, sample in enumerate(value):
        numbers = sample if spec.shape else [sample]
        if spec.shape and (not isinstance(sample, list) or len(sample) != width):
            raise RequestError(f"'{key}[{i}]' must be a list of {width} numbers ({'x'.join(map(str, spec.shape))})")
        for x in numbers:
            if isinstance(x, bool) or not isinstance(x, (int, float)) or (spec.is_integer and not isinstance(x, int)):
                raise RequestError(f"'{key}[{i}]' must hold {what}s, got {type(x).__name__}")
        bad = next((x for x in numbers if not _value_ok(x, spec)), None)
        if bad is not None:
            shown = bad if not spec.shape else "a value"
            raise RequestError(f"'{key}[{i}]' = {shown} is out of range (valid: {_range_text(spec)})")
        checked.extend(numbers)
    return [checked[j : j + width] for j in range(0, len(checked), width)]


def _value_ok(x: int | float, spec: "SampleSpec") -> bool:
    """One value within the spec's range (finite; integers within +-INT_LIMIT when unbounded)."""
    if not spec.is_integer and not np.isfinite(x):
        return False
    low = spec.minimum if spec.minimum is not None else (-INT_LIMIT if spec.is_integer else -np.inf)
    high = spec.maximum if spec.maximum is not None else (INT_LIMIT if spec.is_integer else np.inf)
    return low <= x <= high


def _range_text(spec: "SampleSpec") -> str:
    low = spec.minimum if spec.minimum is not None else (-INT_LIMIT if spec.is_integer else "-inf")
    high = spec.maximum if spec.maximum is not None else (INT_LIMIT if spec.is_integer else "inf")
    return f"{low}..{high}"


def example_request(samples: "Samples", specs: Sequence["SampleSpec"], device_id: str) -> dict:
    """A body holding one device's context (the first row of `samples`): its present samples, oldest first."""
    present = samples.mask[0].bool()
    body: dict[str, Any] = {"device_id": device_id}
    for spec in specs:
        values = samples.fields[spec.name][0][present].reshape(int(present.sum()), -1)
        if spec.is_integer:
            rows = [[int(v) for v in row] for row in values.tolist()]
        else:
            rows = [[round(float(v), 4) for v in row] for row in values.tolist()]
        body[spec.name] = rows if spec.shape else [row[0] for row in rows]
    return body
