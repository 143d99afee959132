"""The one safetensors writer: slot blobs (toolkit.protocol.slots) and binary generate bodies (toolkit.protocol.wire) both call it."""

from __future__ import annotations

import json
import struct
from typing import Iterable, Mapping, Sequence

Tensor = tuple[str, str, Sequence[int], bytes]  # (name, safetensors dtype code e.g. "F32", shape, little-endian data)


def write_safetensors(tensors: Iterable[Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """A safetensors file of `tensors`, in their order: the 8-byte little-endian header length, the header, the data.

    The header is compact JSON (no spaces, keys in order, non-ASCII as UTF-8: byte for byte what orjson and the
    Kotlin and Swift encoders write), `__metadata__` first when `metadata` is non-empty, padded with spaces to a
    multiple of 8 bytes.
    """
    header: dict = {"__metadata__": dict(metadata)} if metadata else {}
    payloads, offset = [], 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        payloads.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(payloads)
