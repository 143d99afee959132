"""Tensor and slot specs (a device program's inputs and its swappable parameters) and the slots' safetensors and flat-blob
encodings."""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Mapping, Protocol

import numpy as np

from toolkit.errors import BlobError, SlotShapeError
from toolkit.protocol.safetensors_io import write_safetensors

DTYPES = {"float32": np.float32, "float16": np.float16}
SAFETENSORS_DTYPES = {"float32": "F32", "float16": "F16"}


@dataclass(frozen=True)
class TensorSpec:
    """A fixed-shape tensor of the exported program."""

    name: str  # input or output name, e.g. "images"
    shape: tuple[int, ...]  # fixed shape (LiteRT needs fixed shapes)
    dtype: str  # "int32" or "float32"
    description: str = ""  # what the values mean, shown in the manifest

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "description": self.description}


@dataclass(frozen=True)
class SlotSpec:
    """One swappable parameter tensor of a device model."""

    name: str  # unique, e.g. "head.0.weight"
    shape: tuple[int, ...]  # fixed shape, as the exported program expects it
    dtype: str = "float32"  # the exported programs take fp32 slots

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.numel * np.dtype(DTYPES[self.dtype]).itemsize

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, obj: Mapping) -> "SlotSpec":
        return cls(str(obj["name"]), tuple(int(x) for x in obj["shape"]), str(obj.get("dtype", "float32")))


class ProgramSpecs(Protocol):
    """What describes a device program on the wire: its inputs, then its slots, and its output (a device model, or
    the manifest's record of one)."""

    input_specs: list[TensorSpec]
    slot_specs: list[SlotSpec]
    output_spec: TensorSpec


def check_slots(specs: list[SlotSpec], slots: Mapping[str, np.ndarray], what: str = "slots") -> None:
    """Raise SlotShapeError unless `slots` holds exactly the spec's names with the spec's shapes."""
    expected = [s.name for s in specs]
    missing = [n for n in expected if n not in slots]
    extra = [n for n in slots if n not in expected]
    if missing or extra:
        raise SlotShapeError(
            f"{what}: expected slots {expected}; missing {missing or 'none'}, unexpected {extra or 'none'}"
        )
    for spec in specs:
        value = np.asarray(slots[spec.name])
        if tuple(value.shape) != spec.shape:
            raise SlotShapeError(
                f"{what}: slot {spec.name!r} should have shape {list(spec.shape)}, got {list(value.shape)}"
            )
        if not np.issubdtype(value.dtype, np.floating):
            raise SlotShapeError(f"{what}: slot {spec.name!r} should be floating point, got {value.dtype}")
        if not np.isfinite(value).all():
            raise SlotShapeError(f"{what}: slot {spec.name!r} holds NaN or infinite values")


def blob_layout(specs: list[SlotSpec]) -> list[dict]:
    """Byte offset and length of each slot inside one flat little-endian fp32 blob, in spec order."""
    layout, offset = [], 0
    for spec in specs:
        layout.append({**spec.to_json(), "offset": offset, "nbytes": spec.nbytes})
        offset += spec.nbytes
    return layout


def pack_flat(specs: list[SlotSpec], slots: Mapping[str, np.ndarray]) -> bytes:
    """Concatenate the slots, in spec order, as little-endian bytes of their spec dtype."""
    check_slots(specs, slots)
    return b"".join(np.ascontiguousarray(slots[s.name], dtype=np.dtype(DTYPES[s.dtype]).newbyteorder("<")).tobytes()
                    for s in specs)


def encode_safetensors(specs: list[SlotSpec], slots: Mapping[str, np.ndarray], dtype: str = "float32",
                       metadata: Mapping[str, str] | None = None) -> bytes:
    """Serialise slots in spec order as a safetensors blob (names and shapes as in the spec)."""
    check_slots(specs, slots)
    if dtype not in DTYPES:
        raise SlotShapeError(f"unsupported slot dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    wire = np.dtype(DTYPES[dtype]).newbyteorder("<")
    return write_safetensors([(spec.name, SAFETENSORS_DTYPES[dtype], spec.shape,
                               np.ascontiguousarray(slots[spec.name], dtype=wire).tobytes()) for spec in specs],
                             metadata)


def decode_safetensors(blob: bytes, specs: list[SlotSpec]) -> dict[str, np.ndarray]:
    """Decode a slot blob and check names and shapes against the spec; returns fp32 arrays in spec order.

    Corrupt blobs raise BlobError; missing, extra or misshapen slots raise SlotShapeError.
    """
    from safetensors import SafetensorError, deserialize

    if len(blob) < 8:
        raise BlobError(f"slot blob of {len(blob)} bytes is too short to be safetensors")
    _refuse_duplicate_names(blob)
    try:  # the reference reader: header bounds, JSON object, string metadata, contiguous offsets, exact length
        entries = deserialize(bytes(blob))
    except (SafetensorError, ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BlobError(f"slot blob is not valid safetensors: {err}") from err
    wire = {name: dtype for dtype, name in SAFETENSORS_DTYPES.items()}
    slots = {}
    for name, entry in entries:
        if entry["dtype"] not in wire:
            raise BlobError(f"slot blob: tensor {name!r} is {entry['dtype']}; slots are sent as "
                            f"{' or '.join(wire)}")
        values = np.frombuffer(bytes(entry["data"]), np.dtype(DTYPES[wire[entry["dtype"]]]).newbyteorder("<"))
        slots[name] = values.astype(np.float32).reshape(entry["shape"])
    check_slots(specs, slots, "slot blob")  # after the cast to float32: finite values only
    return {s.name: slots[s.name] for s in specs}


def _refuse_duplicate_names(blob: bytes) -> None:
    """BlobError for a header that names a tensor twice (the reference reader would keep the last silently)."""
    (size,) = struct.unpack_from("<Q", blob)
    if size > len(blob) - 8:
        return  # the reference reader says what is wrong with the length

    def pairs(items: list) -> dict:
        names = [name for name, _ in items]
        if len(set(names)) != len(names):
            raise BlobError(f"slot blob: the header names {sorted({n for n in names if names.count(n) > 1})} twice")
        return dict(items)

    try:
        json.loads(bytes(blob[8 : 8 + size]), object_pairs_hook=pairs)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return  # not JSON: the reference reader says so


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def specs_to_json(specs: list[SlotSpec]) -> list[dict]:
    return [s.to_json() for s in specs]


def specs_from_json(items: list[Mapping]) -> list[SlotSpec]:
    return [SlotSpec.from_json(x) for x in items]


__all__ = ["TensorSpec", "SlotSpec", "ProgramSpecs", "check_slots", "blob_layout", "pack_flat", "encode_safetensors", "decode_safetensors",
           "sha256_hex", "specs_to_json", "specs_from_json"]
