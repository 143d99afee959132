"""Slot specs, the flat blob layout and the safetensors wire format."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.errors import BlobError, SlotShapeError
from toolkit.protocol.slots import SlotSpec, blob_layout, check_slots, decode_safetensors, encode_safetensors, pack_flat

SPECS = [SlotSpec("head.0.weight", (3, 2)), SlotSpec("head.0.bias", (3,))]


def _slots(seed=0):
    rng = np.random.default_rng(seed)
    return {s.name: rng.normal(size=s.shape).astype(np.float32) for s in SPECS}


def test_safetensors_round_trip_keeps_order_and_values():
    slots = _slots()
    blob = encode_safetensors(SPECS, slots, metadata={"model_version": "abc"})
    decoded = decode_safetensors(blob, SPECS)
    assert list(decoded) == [s.name for s in SPECS]
    for name in slots:
        np.testing.assert_array_equal(decoded[name], slots[name])


def test_safetensors_float16_is_half_the_size():
    slots = _slots()
    full, half = encode_safetensors(SPECS, slots), encode_safetensors(SPECS, slots, dtype="float16")
    assert len(half) < len(full)
    np.testing.assert_allclose(decode_safetensors(half, SPECS)["head.0.bias"], slots["head.0.bias"], atol=1e-2)


def test_blob_written_by_the_safetensors_library_decodes():
    from safetensors.numpy import save

    slots = _slots(3)
    assert decode_safetensors(save(slots), SPECS)["head.0.weight"].shape == (3, 2)


def test_wrong_shape_and_missing_slot_are_named():
    slots = _slots()
    slots["head.0.bias"] = np.zeros(4, np.float32)
    with pytest.raises(SlotShapeError, match=r"head.0.bias.*shape \[3\], got \[4\]"):
        check_slots(SPECS, slots)
    with pytest.raises(SlotShapeError, match="missing \\['head.0.weight'\\]"):
        check_slots(SPECS, {"head.0.bias": np.zeros(3, np.float32)})
    with pytest.raises(SlotShapeError, match="NaN"):
        check_slots(SPECS, {**_slots(), "head.0.bias": np.array([0, np.nan, 0], np.float32)})


@pytest.mark.parametrize("blob", [b"", b"\x00" * 8, b"garbage that is not safetensors at all", b"\xff" * 64])
def test_corrupt_blob_is_refused(blob):
    with pytest.raises(BlobError, match="safetensors"):
        decode_safetensors(blob, SPECS)


def test_truncated_blob_is_refused():
    blob = encode_safetensors(SPECS, _slots())
    with pytest.raises(BlobError):
        decode_safetensors(blob[:-5], SPECS)


def test_flat_layout_offsets_are_contiguous_little_endian_fp32():
    layout = blob_layout(SPECS)
    assert [(x["offset"], x["nbytes"]) for x in layout] == [(0, 24), (24, 12)]
    slots = _slots()
    flat = pack_flat(SPECS, slots)
    np.testing.assert_array_equal(np.frombuffer(flat[24:36], "<f4"), slots["head.0.bias"])


def test_encoded_blob_lists_slots_in_spec_order():
    import json
    import struct

    blob = encode_safetensors(SPECS, _slots())
    (size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + size])
    starts = {name: header[name]["data_offsets"][0] for name in (s.name for s in SPECS)}
    assert sorted(starts, key=starts.get) == [s.name for s in SPECS]
