"""The binary generate body (toolkit.protocol.wire): round trips, safetensors compatibility, and strict refusal of bad bytes."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest
from safetensors.numpy import load, save

from toolkit.protocol.safetensors_io import write_safetensors
from toolkit.protocol.wire import WireError, decode_request, encode_request


def test_a_json_body_round_trips_and_is_plain_safetensors():
    body = {"device_id": "phone-7", "items": [3, 1, 4], "timestamps": [2**40, 5, 6],
            "images": [[0.25, 0.5], [1.0, 0.0]]}
    raw = encode_request(body)
    tensors = load(raw)  # the reference implementation reads it
    assert tensors["items"].dtype == np.int32 and tensors["timestamps"].dtype == np.int64  # I64 only when needed
    assert tensors["images"].dtype == np.float32 and tensors["images"].shape == (2, 2)
    decoded = decode_request(raw)
    assert decoded["device_id"] == "phone-7"
    assert decoded["items"].tolist() == [3, 1, 4] and decoded["timestamps"].tolist() == [2**40, 5, 6]
    np.testing.assert_array_equal(decoded["images"], np.array(body["images"], np.float32))
    written = save({"items": np.array([9, 8], np.int64)}, metadata={"device_id": "x"})  # and it reads theirs
    assert decode_request(written)["items"].tolist() == [9, 8]


def _with_header(header: dict, data: bytes) -> bytes:
    encoded = orjson.dumps(header)
    return struct.pack("<Q", len(encoded)) + encoded + data


ITEMS = np.array([1, 2], "<i8").tobytes()


@pytest.mark.parametrize("raw, message", [
    (b"\x01\x02", "starts with an 8-byte header length"),
    (struct.pack("<Q", 10**6) + b"{}", "exceeds the body"),
    (struct.pack("<Q", 3) + b"{x}", "not valid JSON"),
    (_with_header([1], b""), "must be a JSON object"),  # type: ignore[arg-type]
    (_with_header({"__metadata__": {"device_id": 5}}, b""), "map names to strings"),
    (_with_header({"items": {"dtype": "U8", "shape": [2], "data_offsets": [0, 16]}}, ITEMS), "dtype 'U8'"),
    (_with_header({"items": {"dtype": "I64", "shape": [-2], "data_offsets": [0, 16]}}, ITEMS), "shape must be"),
    (_with_header({"items": {"dtype": "I64", "shape": [2], "data_offsets": [0, 99]}}, ITEMS), "within the 16"),
    (_with_header({"items": {"dtype": "I64", "shape": [3], "data_offsets": [0, 16]}}, ITEMS), "do not hold"),
    (_with_header({"items": {"dtype": "I64", "shape": [1], "data_offsets": [8, 16]}}, ITEMS), "starts at byte 8"),
    (_with_header({"items": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}, ITEMS), "cover 8 of the 16"),
    (_with_header({"__metadata__": {"items": "x"}, "items": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}},
                  ITEMS), "both a tensor and a metadata entry"),
    (_with_header({"items": "I64"}, ITEMS), "must be an object"),
])
def test_malformed_bodies_raise_a_wire_error_naming_the_problem(raw, message):
    with pytest.raises(WireError, match=message):
        decode_request(raw)


def test_fields_that_are_not_strings_or_numbers_cannot_be_encoded():
    with pytest.raises(WireError, match="neither a string nor numbers"):
        encode_request({"items": [True, None]})


def test_the_one_writer_writes_orjson_compact_headers_padded_to_8_and_the_reference_reader_reads_them():
    odd = "caf\u00e9 \u20ac \U0001f600 \x00\x1f\x7f \"q\" \\ \u2028"  # non-ASCII stays UTF-8, like orjson
    raw = write_safetensors([(odd, "I64", (2,), ITEMS), ("empty", "F32", [0], b"")], {"device_id": odd})
    (size,) = struct.unpack_from("<Q", raw)
    expected = orjson.dumps({"__metadata__": {"device_id": odd},
                             odd: {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]},
                             "empty": {"dtype": "F32", "shape": [0], "data_offsets": [16, 16]}})
    assert size % 8 == 0 and raw[8 : 8 + size] == expected + b" " * (size - len(expected)) and size - len(expected) < 8
    assert load(raw)[odd].tolist() == [1, 2] and raw.endswith(ITEMS)
    assert decode_request(raw)["device_id"] == odd
    assert write_safetensors([])[8:] == b"{}      "  # no metadata entry when there is none
