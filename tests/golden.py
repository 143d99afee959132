"""The golden files of the device protocol (tests/golden/): a manifest, slot blobs good and bad, request bodies,
a served package zip, latency statistics and the request trigger's vectors, with the outcome every client must reach
(expected.json).

The Python client (tests/test_golden.py), the Kotlin core (android_demo/core) and DuetKit (ios_demo/DuetKit)
decode the same files and must agree exactly. Rewrite them after a deliberate format change with

    python tests/golden.py            # writes tests/golden/; tests/test_golden.py fails while they are stale
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from toolkit.artifacts import zip_directory  # noqa: E402
from toolkit.protocol.manifest import FORMAT_VERSION, validate_manifest  # noqa: E402
from toolkit.protocol.slots import SlotSpec, blob_layout, encode_safetensors, pack_flat  # noqa: E402
from toolkit.protocol.wire import encode_request  # noqa: E402

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
SPECS = [SlotSpec("head.0.weight", (4, 3)), SlotSpec("head.0.bias", (4,)), SlotSpec("head.1.weight", (2, 4)),
         SlotSpec("head.1.bias", (2,))]
METADATA = {"model_version": "0123456789abcdef", "task": "recommendation"}  # as the service sends it
OTHER_RUN_METADATA = {"model_version": "fedcba9876543210", "task": "recommendation"}  # the same key, another run


def _fake_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def manifest() -> dict[str, Any]:
    """A small valid manifest: two int32 inputs, a score output, the four slots of a head."""
    inputs = [{"name": "history", "shape": [1, 6], "dtype": "int32", "description": "the last 6 item ids"},
              {"name": "candidates", "shape": [1, 5], "dtype": "int32", "description": "item ids to score"}]
    slots = blob_layout(SPECS)
    names = [t["name"] for t in inputs] + [s.name for s in SPECS]
    return {
        "format_version": FORMAT_VERSION,
        "toolkit_version": "golden",
        "task": "recommendation",
        "run": {"name": "golden", "config_sha256": _fake_sha("config")},
        "model_version": METADATA["model_version"],
        "created": "2026-11-30T00:00:00+00:00",
        "inputs": inputs,
        "output": {"name": "scores", "shape": [1, 5], "dtype": "float32", "description": "one score per candidate"},
        "slots": slots,
        "slot_blob": {"byte_order": "little", "dtype": "float32", "nbytes": sum(s["nbytes"] for s in slots)},
        "call_signature": names,
        "quantization": {"mode": "int8", "scope": "static layers only; slots are float32 program inputs"},
        "targets": {
            "executorch": {"file": "model.pte", "bytes": 1000, "sha256": _fake_sha("pte"),
                           "runtime": "executorch 1.5.1", "quantization": "int8", "served_as": "file"},
            "tflite": {"file": "model.tflite", "bytes": 2000, "sha256": _fake_sha("tflite"),
                       "runtime": "ai-edge-litert 2.3.0", "quantization": "int8", "served_as": "file",
                       "input_names": [f"args_{i}" for i in range(len(names))], "output_name": "output_0"},
            "coreml": {"file": "model.mlpackage", "bytes": 3000, "sha256": _fake_sha("coreml"),
                       "runtime": "coremltools 9.0", "quantization": "int8", "served_as": "zip",
                       "input_names": [n.replace(".", "_") for n in names], "output_name": "scores"},
        },
    }


def _bad_manifests(good: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    def changed(edit: Callable[[dict], None]) -> dict:
        copy = json.loads(json.dumps(good))
        edit(copy)
        return copy

    def shift_offset(m: dict) -> None:
        m["slots"][1]["offset"] += 4

    def swap_signature(m: dict) -> None:
        m["call_signature"][2], m["call_signature"][3] = m["call_signature"][3], m["call_signature"][2]

    return {
        "manifest-format-2.json": (changed(lambda m: m.update(format_version=2)), "a format this client does not read"),
        "manifest-not-object.json": ([good], "a JSON array, not an object"),
        "manifest-no-slots.json": (changed(lambda m: m.pop("slots")), "the slots are missing"),
        "manifest-slot-offsets.json": (changed(shift_offset), "a hole between two slots of the flat blob"),
        "manifest-call-signature.json": (changed(swap_signature), "call_signature is not inputs then slots"),
        "manifest-file-dotdot.json": (changed(lambda m: m["targets"]["tflite"].update(file="..")),
                                      "a target file that names the parent directory"),
        "manifest-slot-dtype.json": (changed(lambda m: m["slots"][0].update(dtype="float16")),
                                     "a slot that is not float32 in the program"),
        "manifest-no-description.json": (changed(lambda m: m["inputs"][0].pop("description")),
                                         "an input without its description"),
        "manifest-quantization-mode.json": (changed(lambda m: m["quantization"].update(mode="int4")),
                                            "a quantization mode other than none or int8"),
        "manifest-input-dtype.json": (changed(lambda m: m["inputs"][1].update(dtype="int64")),
                                      "an input dtype the programs do not take (int32 or float32)"),
        "manifest-model-version.json": (changed(lambda m: m.update(model_version="0123456789ABCDEF")),
                                        "a model version that is not 16 lowercase hex digits"),
    }


def slot_values() -> dict[str, np.ndarray]:
    """Float32 slot values with the awkward cases: signed zero, a subnormal, the largest finite float32."""
    rng = np.random.default_rng(13)
    values = {s.name: rng.normal(0, 0.5, s.shape).astype(np.float32) for s in SPECS}
    values["head.0.bias"][:3] = [-0.0, np.float32(1e-40), np.finfo(np.float32).max]
    return values


def half_values() -> dict[str, np.ndarray]:
    """Values sent as F16 (exactly representable): signed zero, the smallest subnormal, the largest half."""
    rng = np.random.default_rng(14)
    values = {s.name: rng.normal(0, 0.5, s.shape).astype(np.float16) for s in SPECS}
    values["head.0.bias"][:] = [-0.0, np.float16(2.0 ** -24), np.float16(65504), np.float16(-3.0e-5)]
    return values


def raw_safetensors(entries: list[tuple[str, str, list[int], bytes]], metadata: dict | None = None,
                    offsets: list[tuple[int, int]] | None = None, data: bytes | None = None) -> bytes:
    """A safetensors file written by hand, so that the header can say what the data does not."""
    header: dict[str, Any] = {"__metadata__": metadata} if metadata is not None else {}
    position = 0
    for i, (name, dtype, shape, payload) in enumerate(entries):
        span = offsets[i] if offsets else (position, position + len(payload))
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": list(span)}
        position += len(payload)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + (data if data is not None else b"".join(e[3] for e in entries))


def _entries(values: dict[str, np.ndarray], dtype: str = "F32", numpy_dtype: str = "<f4") -> list:
    return [(s.name, dtype, list(s.shape), np.ascontiguousarray(values[s.name], numpy_dtype).tobytes())
            for s in SPECS]


def _with_header(blob: bytes, header: bytes) -> bytes:
    """Replace a blob's header JSON (padded to the old length) and keep its data."""
    (size,) = struct.unpack_from("<Q", blob)
    return struct.pack("<Q", size) + header.ljust(size) + blob[8 + size:]


def blob_cases() -> list[tuple[str, bytes, str | None, str, dict[str, np.ndarray] | None]]:
    """(file, bytes, expected error, why, decoded float32 slots when it decodes)."""
    f32, f16 = slot_values(), half_values()
    good = encode_safetensors(SPECS, f32, "float32", METADATA)
    half = encode_safetensors(SPECS, f16.copy(), "float16", METADATA)
    as_f32 = {k: v.astype(np.float32) for k, v in f16.items()}
    entries = _entries(f32)
    reordered_data = entries[1][3] + entries[0][3] + entries[2][3] + entries[3][3]
    spans, position = {}, 0
    for name, _, _, payload in (entries[1], entries[0], entries[2], entries[3]):
        spans[name] = (position, position + len(payload))
        position += len(payload)
    holes = [(0, 48), (52, 68), (68, 100), (100, 108)]
    overlap = [(0, 48), (44, 60), (60, 92), (92, 100)]
    nan = {k: v.copy() for k, v in f32.items()}
    nan["head.1.weight"][1, 2] = np.nan
    inf = {k: v.copy() for k, v in f16.items()}
    inf["head.1.bias"][0] = np.inf
    wrong = [SlotSpec(s.name, (3, 4) if s.name == "head.0.weight" else s.shape) for s in SPECS]
    (size,) = struct.unpack_from("<Q", good)
    corrupt = bytearray(good)
    corrupt[8 + 2] ^= 0x55  # inside the header's first key: no longer JSON
    return [
        ("slots-f32.safetensors", good, None, "F32 slots as the service sends them, with __metadata__", f32),
        ("slots-f16.safetensors", half, None, "F16 slots (?dtype=float16), decoded to float32 exactly", as_f32),
        ("reordered.safetensors", raw_safetensors(entries, offsets=[spans[s.name] for s in SPECS],
                                                  data=reordered_data),
         None, "tensors stored out of header order, still contiguous from 0", f32),
        ("no-metadata.safetensors", raw_safetensors(entries), None, "no __metadata__ entry at all", f32),
        ("header-leading-whitespace.safetensors", _with_header(good, b"\n\t " + good[8:8 + size].rstrip()), None,
         "JSON whitespace before the header's {", f32),
        ("duplicate-name.safetensors", _with_header(good, good[8:8 + size].rstrip()[:-1]
                                                    + b',"head.1.bias":{"dtype":"F32","shape":[2],"data_offsets":[96,104]}}'),
         "blob", "a header that names a tensor twice", None),
        ("short.safetensors", good[:5], "blob", "fewer than the 8 bytes of the header length", None),
        ("truncated.safetensors", good[:-5], "blob", "the data ends 5 bytes early", None),
        ("trailing.safetensors", good + b"\0\0\0\0", "blob", "4 bytes after the last tensor", None),
        ("corrupt.safetensors", bytes(corrupt), "blob", "a flipped byte inside the header JSON", None),
        ("header-too-long.safetensors", struct.pack("<Q", len(good)) + good[8:], "blob",
         "a header length past the end of the file", None),
        ("header-not-object.safetensors", _with_header(good, b"[1, 2, 3]"), "blob",
         "a header that is a JSON array", None),
        ("header-not-json.safetensors", _with_header(good, b"xy" + good[8:8 + size - 2]), "blob",
         "a header that does not start with {", None),
        ("metadata-not-strings.safetensors", raw_safetensors(entries, metadata={"model_version": 1}), "blob",
         "__metadata__ values must be strings", None),
        ("holes.safetensors", raw_safetensors(entries, offsets=holes, data=b"".join(e[3] for e in entries)
                                              + b"\0" * 4), "blob",
         "a 4-byte hole between two tensors", None),
        ("overlap.safetensors", raw_safetensors(entries, offsets=overlap, data=b"".join(e[3] for e in entries)[:100]),
         "blob", "two tensors share 4 bytes", None),
        ("bad-size.safetensors", raw_safetensors(
            [(n, d, [s[0] + 1, *s[1:]] if n == "head.1.bias" else s, p) for n, d, s, p in entries]), "blob",
         "a shape whose element count does not match its bytes", None),
        ("f64.safetensors", raw_safetensors(_entries(f32, "F64", "<f8")), "blob",
         "F64 slots (only F32 and F16 are sent)", None),
        ("i32.safetensors", raw_safetensors(_entries({s.name: np.arange(np.prod(s.shape)).reshape(s.shape)
                                                      for s in SPECS}, "I32", "<i4")), "blob", "integer slots", None),
        ("bf16.safetensors", raw_safetensors(
            [(n, "BF16", s, p[: len(p) // 2]) for n, d, s, p in entries]), "blob", "BF16 slots", None),
        ("wrong-shape.safetensors", encode_safetensors(wrong, {s.name: f32[s.name].reshape(s.shape) for s in wrong}),
         "slot_shape", "head.0.weight as 3x4 where the manifest says 4x3", None),
        ("missing-slot.safetensors", encode_safetensors(SPECS[:3], {s.name: f32[s.name] for s in SPECS[:3]}), "slot_shape", "head.1.bias is missing", None),
        ("extra-slot.safetensors", encode_safetensors(SPECS + [SlotSpec("head.2.bias", (2,))],
                                                      {**f32, "head.2.bias": np.ones(2, np.float32)}),
         "slot_shape", "a slot the manifest does not name", None),
        ("nan.safetensors", raw_safetensors(_entries(nan)), "slot_shape", "a NaN in head.1.weight", None),
        ("f16-inf.safetensors", raw_safetensors(_entries(inf, "F16", "<f2")), "slot_shape",
         "an infinite F16 value in head.1.bias", None),
    ]


SIGNING_SEED = bytes(range(32))  # the golden Ed25519 key: fixed, so its signatures (deterministic) are too
BOUND = 2.0  # max_abs of every slot in manifest-trusted.json


def trust_cases(good: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bytes], list[dict[str, Any]]]:
    """A manifest with slot bounds and a signing key, blobs, and (blob, signature, expected outcome) cases."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from toolkit.protocol.signing import ALGORITHM, public_key_text, sign

    key = Ed25519PrivateKey.from_private_bytes(SIGNING_SEED)
    trusted = json.loads(json.dumps(good))
    for slot in trusted["slots"]:
        slot["max_abs"] = BOUND
    trusted["signing"] = {"algorithm": ALGORITHM, "public_key": public_key_text(key)}
    rng = np.random.default_rng(18)
    inside = {s.name: np.clip(rng.normal(0, 0.5, s.shape), -1.9, 1.9).astype(np.float32) for s in SPECS}
    inside["head.1.bias"][:] = [BOUND, -BOUND]  # exactly at the bound: accepted
    beyond = {k: v.copy() for k, v in inside.items()}
    beyond["head.0.weight"][2, 1] = -2.001
    blobs = {"trusted.safetensors": encode_safetensors(SPECS, inside, "float32", METADATA),
             "beyond-bound.safetensors": encode_safetensors(SPECS, beyond, "float32", METADATA),
             "other-run.safetensors": encode_safetensors(SPECS, inside, "float32", OTHER_RUN_METADATA),
             "no-version.safetensors": encode_safetensors(SPECS, inside, "float32", {"task": METADATA["task"]})}
    flat = pack_flat(SPECS, inside)
    good_blob, other = blobs["trusted.safetensors"], blobs["beyond-bound.safetensors"]
    tampered = bytearray(good_blob)
    tampered[-12] ^= 0x01  # the lowest mantissa byte of the last value of head.1.weight: still within bounds
    blobs["trusted-tampered.safetensors"] = bytes(tampered)
    signature = sign(key, good_blob)
    cases = [
        {"blob": "trusted.safetensors", "signature": signature, "error": None, "flat": "trusted.flat",
         "why": "signed, every value within its bound (two exactly at it)"},
        {"blob": "beyond-bound.safetensors", "signature": sign(key, other), "error": "bounds",
         "why": "signed, but head.0.weight holds -2.001 beyond max_abs 2"},
        {"blob": "trusted-tampered.safetensors", "signature": signature, "error": "signature",
         "why": "one byte changed after signing (sha256 recomputed, values still in bounds)"},
        {"blob": "trusted.safetensors", "signature": sign(key, other), "error": "signature",
         "why": "the signature of another blob"},
        {"blob": "trusted.safetensors", "signature": "", "error": "signature",
         "why": "no signature although the manifest carries a signing key"},
        {"blob": "trusted.safetensors", "signature": "not base64!", "error": "signature",
         "why": "a signature that is not base64"},
        {"blob": "trusted.safetensors", "signature": base64.b64encode(base64.b64decode(signature)[:63]).decode(),
         "error": "signature", "why": "a 63-byte signature"},
        {"blob": "other-run.safetensors", "signature": sign(key, blobs["other-run.safetensors"]), "error": "version",
         "why": "signed by the same key for another run: its __metadata__ names model version "
                f"{OTHER_RUN_METADATA['model_version']}, only the X-Model-Version header was rewritten to the manifest's"},
        {"blob": "no-version.safetensors", "signature": sign(key, blobs["no-version.safetensors"]), "error": "version",
         "why": "signed, but its __metadata__ names no model version: the signature would bind none"},
    ]
    return trusted, {**blobs, "trusted.flat": flat}, cases


OTHER_KEY_SEED = bytes(range(32, 64))  # a second fixed key: the one a swapped manifest names


def pinning_cases(good: dict[str, Any], trusted: dict[str, Any], blobs: dict[str, bytes],
                  trust: list[dict[str, Any]]) -> tuple[dict[str, bytes], dict[str, Any]]:
    """A client pinned to the golden key: the trusted manifest passes, one naming another key (whose blob verifies
    against that key) and one naming no key are refused; the files and the expected.json entry."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from toolkit.protocol.signing import public_key_text, sign

    other = Ed25519PrivateKey.from_private_bytes(OTHER_KEY_SEED)
    swapped = json.loads(json.dumps(trusted))
    swapped["signing"]["public_key"] = public_key_text(other)
    good_case = next(c for c in trust if c["error"] is None)
    cases = [
        {**{k: good_case[k] for k in ("blob", "signature", "flat")}, "manifest": "manifest-trusted.json",
         "error": None, "why": "the manifest names the pinned key and the blob verifies with it"},
        {"manifest": "manifest-swapped-key.json", "blob": good_case["blob"],
         "signature": sign(other, blobs[good_case["blob"]]), "error": "pinned",
         "why": "a manifest naming another key, and a blob that key signed: it verifies against the manifest, "
                "but the client is pinned"},
        {"manifest": "manifest.json", "blob": "slots-f32.safetensors", "signature": "", "error": "pinned",
         "why": "a manifest without signing while the client pins a key: an unsigned blob is not accepted"},
    ]
    files = {"manifest-swapped-key.json": json.dumps(swapped, indent=2).encode()}
    return files, {"pinned_key": trusted["signing"]["public_key"], "cases": cases}


def request_cases() -> dict[str, dict[str, Any]]:
    """JSON generate bodies; their binary form is toolkit.protocol.wire.encode_request's bytes."""
    rng = np.random.default_rng(15)
    items = [int(x) for x in rng.integers(1, 3000, 30)]
    timestamps = [int(x) for x in np.sort(rng.integers(1_100_000_000, 1_400_000_000, 30))]
    return {
        "request": {"device_id": "golden-device", "items": items, "timestamps": timestamps},
        "request-image": {"device_id": "golden-image-device", "images": [[0.0, 0.25, 0.5, 1.0], [0.125, 0.75, 1.0, 0.0]]},
        "request-wide": {"device_id": "golden-wide-device", "items": [1, 2 ** 33], "timestamps": []},
    }


def package_dir(root: Path) -> Path:
    """A stand-in .mlpackage: text (dynamic Huffman), a tiny file (fixed Huffman), random bytes (stored), empty."""
    package = root / "model.mlpackage"
    rng = np.random.default_rng(16)
    files = {
        "Manifest.json": json.dumps({"fileFormatVersion": "1.0.0", "itemInfoEntries": {
            f"item-{i}": {"author": "golden", "path": f"weights/{i}.bin"} for i in range(20)}}, indent=2).encode(),
        "Data/com.apple.CoreML/model.mlmodel": b"mlmodel",
        "Data/com.apple.CoreML/weights/weight.bin": rng.bytes(70_000),
        "Data/com.apple.CoreML/empty": b"",
    }
    for name, data in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_bytes(data)
    return package


def zip_slip() -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("model.mlpackage/Manifest.json", (1980, 1, 1, 0, 0, 0)), b"{}")
        archive.writestr(zipfile.ZipInfo("model.mlpackage/../../evil.txt", (1980, 1, 1, 0, 0, 0)), b"outside")
    return buffer.getvalue()


def _minibench_mean(ordered: list[float]) -> float:
    """Kotlin's List<Double>.average() as minibench calls it: a plain left-to-right sum, then one division."""
    total = 0.0
    for value in ordered:
        total += value
    return total / len(ordered)


def latency_stats() -> dict[str, Any]:
    """Latency samples and the statistics every benchmark writer must compute from them: minibench's avg and
    trimmean (its ModelRunner: the samples sorted, `latency.average()` and `subList(n / 10, n * 9 / 10).average()`),
    numpy's linear percentiles. 23 samples: the trimmed list is [2, 20), unlike floor(n/10) cut at both ends."""
    samples = [round(float(x), 3) for x in np.random.default_rng(17).gamma(4.0, 0.5, 23)]
    ordered, n = sorted(samples), len(samples)
    return {"samples_ms": samples, "avg": _minibench_mean(ordered),
            "trimmean": _minibench_mean(ordered[n // 10: n * 9 // 10]),
            "p50": float(np.percentile(samples, 50)), "p90": float(np.percentile(samples, 90)),
            "p99": float(np.percentile(samples, 99))}


BENCHMARK_MODEL = {"name": "model", "backend": "xnnpack", "quantization": "int8"}
BENCHMARK_DEVICE = {"device": "google", "arch": "Pixel 8", "os": "Android 15", "totalMem": 8_000_000_000,
                    "availMem": 3_100_000_000}  # minibench's deviceInfo: Build.BRAND, Build.MODEL, "Android <release>"
SWAP_WARM_UP, SWAP_TIMED = 1, 5  # slot swap and generate round trip: timed repetitions after untimed ones


def _p50(values: list[float]) -> float:
    return float(np.percentile(values, 50))


def sampling_scenarios(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """The benchmark's one sampling sequence (docs/formats.md, "Benchmark sampling"), played against a scripted
    program and clock: what each operation of the fake takes (ms), the memory each probe reads (MB), the trace of
    operations and clock reads both cores' runners must make, and the records they must write. Each record's value
    follows from the script by the formulas alone: that is what this function computes."""
    warm = [40.0, 30.0, 20.0]  # warm-up calls: slow on purpose, they must not reach a record
    timed = stats["samples_ms"]
    swap_forward = [5.0, 0.75, 0.875, 0.625, 1.0, 0.5]
    prepare = 0.125  # building the runtime's input tensors from the arguments
    generate = [9.0, 15.0, 16.5, 15.125, 14.0, 17.25]
    memory = [96.5, 120.25, 131.0, 133.75]  # before the load, after it, after the timed calls, at the end
    ok_stats = _records_of_latency(timed)
    swaps = [prepare + f for f in swap_forward][SWAP_WARM_UP:]
    ok_trace = (["memory", "clock", "load", "clock", "memory", "prepare:base"] + ["forward"] * len(warm)
                + ["clock", "forward", "clock"] * len(timed) + ["memory"]
                + ["clock", "generate", "clock"] * (SWAP_WARM_UP + SWAP_TIMED) + ["fetch_swap"]
                + ["clock", "prepare:swap", "forward", "clock"] * (SWAP_WARM_UP + SWAP_TIMED) + ["memory"])
    ok = {
        "name": "ok", "why": "online: every step measured", "memory_metric": "ram_pss",
        "num_warm_up_iter": len(warm), "num_iter": len(timed), "service": True,
        "script": {"load_ms": 12.5, "prepare_ms": prepare, "forward_ms": warm + timed + swap_forward,
                   "generate_ms": generate, "fetch_swap_ms": 50.0, "memory_mb": memory,
                   "generate_answer": "slots-f16.safetensors", "swap_answer": "slots-f16.safetensors",
                   "swap_sha256_ok": True, "settings": [["num_threads", 1.0]]},
        "trace": ok_trace,
        "records": ok_stats + [
            {"metric": "model_load_time(ms)", "value": 12.5}, {"metric": "load_status", "value": 0.0},
            {"metric": "ram_pss_usage(mb)", "value": memory[2] - memory[0]},
            {"metric": "ram_pss_peak(mb)", "value": max(memory)},
            {"metric": "generate_round_trip(ms)", "value": _p50(generate[SWAP_WARM_UP:])},
            {"metric": "slot_swap_latency(ms)", "value": _p50(swaps)},
            {"metric": "num_threads", "value": 1.0}],
    }
    load_fails = {
        "name": "load-fails", "why": "the runtime refuses the program: its error code in load_status, nothing else "
                                     "measured, a failure record", "memory_metric": "ram_pss",
        "num_warm_up_iter": 2, "num_iter": 3, "service": True,
        "script": {"load_ms": 3.25, "load_error_code": 35, "prepare_ms": prepare, "forward_ms": [], "generate_ms": [],
                   "fetch_swap_ms": 0.0, "memory_mb": [96.5], "generate_answer": "slots-f16.safetensors",
                   "swap_answer": "slots-f16.safetensors", "swap_sha256_ok": True, "settings": []},
        "trace": ["memory", "clock", "load", "clock"],
        "records": [{"metric": "model_load_time(ms)", "value": 3.25}, {"metric": "load_status", "value": 35.0},
                    {"metric": "benchmark_failed", "value": 1.0, "error": "load: "}],
    }
    refused_timed = [2.0, 4.0]
    refused = {
        "name": "swap-refused", "why": "offline (no generate), and the slot answer swapped in is refused: the swap's "
                                       "record is left out, a failure record says why", "memory_metric": "phys_footprint",
        "num_warm_up_iter": 1, "num_iter": 2, "service": False,
        "script": {"load_ms": 12.5, "prepare_ms": prepare, "forward_ms": [1.0] + refused_timed, "generate_ms": [],
                   "fetch_swap_ms": 50.0, "memory_mb": [80.0, 95.5, 99.0, 101.25],
                   "generate_answer": "slots-f16.safetensors", "swap_answer": "slots-f16.safetensors",
                   "swap_sha256_ok": False, "settings": [["coreml_compute_units", 1.0]]},
        "trace": ["memory", "clock", "load", "clock", "memory", "prepare:base", "forward",
                  "clock", "forward", "clock", "clock", "forward", "clock", "memory", "fetch_swap", "clock", "memory"],
        "records": _records_of_latency(refused_timed) + [
            {"metric": "model_load_time(ms)", "value": 12.5}, {"metric": "load_status", "value": 0.0},
            {"metric": "phys_footprint_usage(mb)", "value": 99.0 - 80.0},
            {"metric": "phys_footprint_peak(mb)", "value": 101.25},
            {"metric": "coreml_compute_units", "value": 1.0},
            {"metric": "benchmark_failed", "value": 1.0, "error": "slot_swap: "}],
    }
    return [ok, load_fails, refused]


def _records_of_latency(samples: list[float]) -> list[dict[str, Any]]:
    ordered, n = sorted(samples), len(samples)
    stats = [("avg_inference_latency(ms)", _minibench_mean(ordered)),
             ("trimmean_inference_latency(ms)", _minibench_mean(ordered[n // 10: n * 9 // 10]) if n * 9 // 10 > n // 10
              else None)]
    stats += [(f"p{q}_inference_latency(ms)", float(np.percentile(samples, q))) for q in (50, 90, 99)]
    return [{"metric": metric, "value": value} for metric, value in stats if value is not None]


def benchmark_results(scenario: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """benchmark_results.json as both apps write it for the "ok" sampling scenario (what `cli.py bench --import`
    reads), and the expected.json entry the cores rebuild it from (they run the scenario with this model and device)."""
    from toolkit.bench.records import BenchmarkModel, DeviceInfo, Record, records_json

    model, device = BenchmarkModel(**BENCHMARK_MODEL), DeviceInfo(**BENCHMARK_DEVICE)
    records = [Record(model, r["metric"], r["value"], device) for r in scenario["records"]]
    entry = {"file": "benchmark_results.json", "model": BENCHMARK_MODEL, "device": BENCHMARK_DEVICE,
             "scenario": scenario["name"],
             "why": "the records of the sampling scenario, in the order the runners write them"}
    return json.dumps(records_json(records), indent=2).encode(), entry


def user_model_files() -> tuple[dict[str, bytes], dict[str, Any]]:
    """The manifest and a slot blob of a model of a user's (examples/digits_devices.py's DigitNet, slots on a
    convolution, a LayerNorm and the classifier): 4-D kernel slots and vectors, which every client decodes alike."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from digits_devices import DigitNet
    finally:
        sys.path.remove(str(ROOT / "examples"))
    from toolkit.model.slots import SlotConfig, personalize, slot_specs

    specs = slot_specs(personalize(DigitNet(width=4), SlotConfig(("mix", "norm", "classifier"))))
    rng = np.random.default_rng(21)
    values = {s.name: rng.normal(0, 0.5, s.shape).astype(np.float32) for s in specs}
    inputs = [{"name": "images", "shape": [2, 1, 8, 8], "dtype": "float32", "description": "grey images"}]
    model = manifest()
    model.update(task="digits_devices:DigitsDevices", inputs=inputs, slots=blob_layout(specs),
                 output={"name": "output", "shape": [2, 10], "dtype": "float32", "description": "class logits"},
                 call_signature=["images"] + [s.name for s in specs])
    model["slot_blob"]["nbytes"] = sum(s.nbytes for s in specs)
    for target in model["targets"].values():
        if "input_names" in target:
            target["input_names"] = [n.replace(".", "_") if "coreml" in target["runtime"] else f"args_{i}"
                                     for i, n in enumerate(model["call_signature"])]
    validate_manifest(model, "golden user-model manifest")
    files = {"model-manifest.json": json.dumps(model, indent=2).encode(),
             "model-slots.safetensors": encode_safetensors(specs, values, "float32", METADATA),
             "model-slots.flat": pack_flat(specs, values)}
    shapes = {s.name: list(s.shape) for s in specs}
    return files, {"manifest": "model-manifest.json", "blob": "model-slots.safetensors", "flat": "model-slots.flat",
                   "shapes": shapes, "why": "a user's model: a 4-D convolution kernel, LayerNorm vectors, a linear layer"}
def _bits(value: float) -> str:
    """A float64's 16 hex digits (big-endian): scores are compared bit for bit, never through a decimal parser."""
    return struct.pack(">d", value).hex()


def trigger_cases() -> dict[str, Any]:
    """The request trigger (docs/formats.md, "The request trigger"): configurations that parse or are refused,
    scenarios of windows and confidences with the score (as float64 bits) and the decision of every step, and inputs
    a trigger refuses. Inputs are dyadic fractions, exact in any JSON parser; the scores are what the Python
    implementation computes, in the documented order of operations."""
    from toolkit.errors import ManifestError, SlotShapeError
    from toolkit.protocol.trigger import RequestTrigger, TriggerConfig

    configs = [
        ({"score": "window", "window": 5, "threshold": 0.25}, None, "the window score over 5 samples"),
        ({"score": "confidence", "window": 1, "threshold": 0.5, "budget": 25}, None, "with the budget it was chosen for"),
        ({"score": "drift", "window": 5, "threshold": 0.25}, "manifest", "an unknown score"),
        ({"score": "window", "window": 0, "threshold": 0.25}, "manifest", "a window of no sample"),
        ({"score": "window", "window": 2.5, "threshold": 0.25}, "manifest", "a window that is not a whole number"),
        ({"score": "window", "window": 1025, "threshold": 0.25}, "manifest", "a window above 1024"),
        ({"score": "window", "window": 5, "threshold": "0.25"}, "manifest", "a threshold that is text"),
        ({"score": "window", "window": 5}, "manifest", "no threshold"),
        ({"score": "window", "window": 5, "threshold": 0.25, "every": 3}, "manifest", "a key it does not know"),
        ([0.25], "manifest", "not an object"),
    ]
    rec = [[[30.5], [30.75], [31.0]], [[30.75], [31.0], [31.0625]], [[31.0], [31.0625], [33.5]],
           [[31.0625], [33.5], [33.5]], [[33.5], [33.5], [33.53125]], [[33.5], [33.53125], [40.0]]]
    image = [[[0.0, 0.25, 0.5, 1.0], [0.125, 0.75, 1.0, 0.0]], [[0.125, 0.75, 1.0, 0.0], [0.25, 0.5, 0.5, 0.5]],
             [[0.25, 0.5, 0.5, 0.5], [1.0, 1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0, 0.0], [0.875, 1.0, 0.0, 0.125]]]
    scenarios = [
        {"name": "window-timestamps", "config": {"score": "window", "window": 2, "threshold": 0.5},
         "why": "recommendation: each sample's click time in years; a new burst years later fires, its request resets "
                "the anchor", "start": rec[0],
         "steps": [{"window": w, "confidence": None} for w in rec[1:]]},
        {"name": "window-images", "config": {"score": "window", "window": 2, "threshold": 0.3125},
         "why": "images: four pixel features per sample; the RMS distance over features", "start": image[0],
         "steps": [{"window": w, "confidence": None} for w in image[1:]]},
        {"name": "confidence", "config": {"score": "confidence", "window": 3, "threshold": 0.4375},
         "why": "the mean confidence of the latest 3 samples since the last request; an unknown confidence adds "
                "nothing; a request that failed to install keeps the history, so the next step asks again",
         "start": [[1.0]],
         "steps": [{"window": [[1.0]], "confidence": 0.875}, {"window": [[1.0]], "confidence": 0.5},
                   {"window": [[1.0]], "confidence": None}, {"window": [[1.0]], "confidence": 0.25},
                   {"window": [[1.0]], "confidence": 0.0, "installed": False},
                   {"window": [[1.0]], "confidence": 1.0}, {"window": [[1.0]], "confidence": 0.75},
                   {"window": [[1.0]], "confidence": 0.375}]},  # the score equals the threshold: no request
        {"name": "window-rounding", "config": {"score": "window", "window": 3, "threshold": 0.05},
         "why": "values whose sums round: only the left-to-right order from the oldest sample gives these bits "
                "((0.1 + 0.2) + 0.3 is not 0.1 + (0.2 + 0.3))", "start": [[0.7, 0.1], [0.1, 0.2], [0.2, 0.3]],
         "steps": [{"window": [[0.1, 0.2], [0.2, 0.3], [0.3, 0.1]], "confidence": None},
                   {"window": [[0.2, 0.3], [0.3, 0.1], [0.1, 0.7]], "confidence": None},
                   {"window": [[0.3, 0.1], [0.1, 0.7], [0.6, 0.3]], "confidence": None}]},
        {"name": "before-any-slots", "config": {"score": "window", "window": 3, "threshold": 100.0},
         "why": "a device that never installed slots always asks (score +infinity)", "start": None,
         "steps": [{"window": [[1.0]], "confidence": None}]},
    ]
    for scenario in scenarios:
        trigger = RequestTrigger(TriggerConfig.from_json(scenario["config"]))
        if scenario["start"] is not None:
            trigger.start(scenario["start"])
        for step in scenario["steps"]:
            decision = trigger.step(step["window"], step["confidence"])
            step.update(score=decision.score if decision.score != float("inf") else "inf",
                        score_bits=_bits(decision.score), request=decision.request)
            step.setdefault("installed", True)
            if decision.request and step["installed"]:
                trigger.start(step["window"])
    errors = [
        ({"start": [], "window": [[1.0]], "confidence": None}, "an empty window"),
        ({"start": [[1.0, 2.0], [3.0]], "window": [[1.0]], "confidence": None}, "samples with 2 and 1 features"),
        ({"start": [[1.0, 2.0]], "window": [[1.0, 2.0, 3.0]], "confidence": None},
         "a window of 3 features after a request made with 2"),
        ({"start": [[1.0]], "window": [[1.0]], "confidence": 1.5}, "a confidence above 1"),
        ({"start": [[1.0]], "window": [[1.0]], "confidence": -0.125}, "a confidence below 0"),
    ]
    error_cases = []
    for case, why in errors:
        trigger = RequestTrigger(TriggerConfig("window", 3, 0.5))
        try:
            trigger.start(case["start"])
            trigger.step(case["window"], case["confidence"])
        except SlotShapeError:
            error_cases.append({**case, "config": trigger.config.to_json(), "error": "slot_shape", "why": why})
        else:
            raise AssertionError(f"the trigger accepted {why}")
    config_cases = []
    for config, error, why in configs:
        try:
            TriggerConfig.from_json(config)
            outcome = None
        except ManifestError:
            outcome = "manifest"
        if outcome != error:
            raise AssertionError(f"trigger config {config}: expected {error}, Python says {outcome}")
        config_cases.append({"config": config, "error": error, "why": why})
    return {"configs": config_cases, "scenarios": scenarios, "errors": error_cases}


def golden_files() -> dict[str, bytes]:
    """Every golden file by name, expected.json included."""
    files: dict[str, bytes] = {}
    good = manifest()
    validate_manifest(good, "golden manifest")
    files["manifest.json"] = json.dumps(good, indent=2).encode()
    expected: dict[str, Any] = {
        "manifest": "manifest.json",
        "manifests": [{"file": "manifest.json", "error": None, "why": "a valid manifest"}],
        "blobs": [], "requests": [], "zips": [], "stats": latency_stats()}
    for name, (content, why) in _bad_manifests(good).items():
        files[name] = json.dumps(content, indent=2).encode()
        expected["manifests"].append({"file": name, "error": "manifest", "why": why})
    for name, data, error, why, decoded in blob_cases():
        files[name] = data
        entry: dict[str, Any] = {"file": name, "error": error, "why": why}
        if decoded is not None:
            flat = name.replace(".safetensors", ".flat")
            files[flat] = pack_flat(SPECS, decoded)
            entry["flat"] = flat
        expected["blobs"].append(entry)
    for name, body in request_cases().items():
        files[f"{name}.json"] = json.dumps(body).encode()
        files[f"{name}.safetensors"] = encode_request(body)
        expected["requests"].append({"json": f"{name}.json", "binary": f"{name}.safetensors"})
    with tempfile.TemporaryDirectory() as tmp:
        package = package_dir(Path(tmp))
        files["package.zip"] = zip_directory(package)
        entries = {f"{package.name}/{p.relative_to(package).as_posix()}": hashlib.sha256(p.read_bytes()).hexdigest()
                   for p in sorted(package.rglob("*")) if p.is_file()}
    expected["zips"].append({"file": "package.zip", "error": None, "entries": entries,
                             "why": "a served .mlpackage: deflate entries, sorted, fixed timestamps"})
    trusted, trust_files, cases = trust_cases(good)
    validate_manifest(trusted, "golden trusted manifest")
    files["manifest-trusted.json"] = json.dumps(trusted, indent=2).encode()
    files.update(trust_files)
    expected["trust"] = {"manifest": "manifest-trusted.json", "cases": cases}
    pin_files, expected["pinning"] = pinning_cases(good, trusted, trust_files, cases)
    files.update(pin_files)
    expected["sampling"] = sampling_scenarios(expected["stats"])
    files["benchmark_results.json"], expected["benchmark_results"] = benchmark_results(expected["sampling"][0])
    model_files, expected["user_model"] = user_model_files()
    files.update(model_files)
    files["zip-slip.zip"] = zip_slip()
    expected["zips"].append({"file": "zip-slip.zip", "error": "blob", "why": "an entry that leaves the destination"})
    expected["trigger"] = trigger_cases()
    files["expected.json"] = (json.dumps(expected, indent=1) + "\n").encode()
    return files


def write(directory: Path = GOLDEN_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = golden_files()
    for stale in directory.iterdir():
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, data in files.items():
        (directory / name).write_bytes(data)
        written.append(directory / name)
    return written


if __name__ == "__main__":
    paths = write()
    print(f"wrote {len(paths)} golden files to {GOLDEN_DIR}")
