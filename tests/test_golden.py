"""The golden files of the device protocol: current, and decoded (and the trigger decided) by the Python client as
expected.json says.

The Kotlin core and DuetKit run the same files (make android-core-test, make ios-core-test).
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile

import numpy as np
import pytest
from golden import GOLDEN_DIR, SPECS, golden_files

from toolkit.client import SlotAnswer, _unzip, check_answer, check_pinned_key
from toolkit.errors import BlobError, ManifestError, SlotShapeError
from toolkit.protocol.manifest import load_manifest, slot_specs_of
from toolkit.protocol.slots import decode_safetensors, pack_flat
from toolkit.protocol.trigger import RequestTrigger, TriggerConfig
from toolkit.protocol.wire import decode_request, encode_request

EXPECTED = json.loads((GOLDEN_DIR / "expected.json").read_text())
ERRORS = {"blob": BlobError, "slot_shape": SlotShapeError, "manifest": ManifestError, "signature": BlobError,
          "bounds": BlobError, "version": BlobError, "pinned": ManifestError}
MATCH = {"signature": "signature|not signed|not base64", "bounds": "beyond its bound", "version": "model version",
         "pinned": "pinned"}  # what the message of each trust and pinning outcome says


def _comparable(name: str, data: bytes | None):
    """A zip's entries and contents (another zlib may compress the same files to other bytes); other files as is."""
    if data is None or not name.endswith(".zip"):
        return data
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def test_the_golden_files_are_current():
    fresh = golden_files()
    on_disk = {p.name: p.read_bytes() for p in GOLDEN_DIR.iterdir()}
    stale = sorted(name for name in fresh if _comparable(name, on_disk.get(name)) != _comparable(name, fresh[name]))
    extra = sorted(set(on_disk) - set(fresh))
    assert not stale and not extra, (f"tests/golden is stale (run `python tests/golden.py`): differ {stale}, "
                                     f"not written by it {extra}")


def test_the_golden_manifest_describes_the_golden_slots():
    manifest = load_manifest(GOLDEN_DIR / EXPECTED["manifest"])
    assert slot_specs_of(manifest) == SPECS


@pytest.mark.parametrize("case", EXPECTED["manifests"], ids=lambda c: c["file"])
def test_manifests_load_or_fail_as_expected(case):
    path = GOLDEN_DIR / case["file"]
    if case["error"] is None:
        assert load_manifest(path)["format_version"] == 1
    else:
        with pytest.raises(ERRORS[case["error"]]):
            load_manifest(path)


@pytest.mark.parametrize("case", EXPECTED["blobs"], ids=lambda c: c["file"])
def test_slot_blobs_decode_or_fail_as_expected(case):
    specs = slot_specs_of(load_manifest(GOLDEN_DIR / EXPECTED["manifest"]))
    blob = (GOLDEN_DIR / case["file"]).read_bytes()
    if case["error"] is None:
        slots = decode_safetensors(blob, specs)
        assert pack_flat(specs, slots) == (GOLDEN_DIR / case["flat"]).read_bytes()
    else:
        with pytest.raises(ERRORS[case["error"]]):
            decode_safetensors(blob, specs)


def test_the_error_cases_cover_every_reason_and_the_good_cases_are_distinct():
    errors = {c["error"] for c in EXPECTED["blobs"]}
    assert errors == {None, "blob", "slot_shape"}
    flats = [(GOLDEN_DIR / c["flat"]).read_bytes() for c in EXPECTED["blobs"] if c["error"] is None]
    assert len(set(flats)) == 2  # the F32 cases share values; the F16 case has its own
    assert np.signbit(np.frombuffer(flats[0], "<f4")[12])  # the -0.0 in head.0.bias survives as -0.0


@pytest.mark.parametrize("case", EXPECTED["trust"]["cases"], ids=lambda c: f"{c['blob']}:{c['why'][:30]}")
def test_signed_and_bounded_blobs_are_checked_as_expected(case):
    manifest = load_manifest(GOLDEN_DIR / EXPECTED["trust"]["manifest"])
    blob = (GOLDEN_DIR / case["blob"]).read_bytes()
    answer = SlotAnswer(blob, hashlib.sha256(blob).hexdigest(), manifest["model_version"], case["signature"])
    if case["error"] is None:
        assert pack_flat(SPECS, check_answer(answer, manifest)) == (GOLDEN_DIR / case["flat"]).read_bytes()
    else:
        with pytest.raises(ERRORS[case["error"]], match=MATCH[case["error"]]):
            check_answer(answer, manifest)


@pytest.mark.parametrize("case", EXPECTED["pinning"]["cases"], ids=lambda c: f"{c['manifest']}:{c['why'][:30]}")
def test_a_pinned_key_cannot_be_replaced_by_a_manifest(case):
    manifest = load_manifest(GOLDEN_DIR / case["manifest"])
    blob = (GOLDEN_DIR / case["blob"]).read_bytes()
    answer = SlotAnswer(blob, hashlib.sha256(blob).hexdigest(), manifest["model_version"], case["signature"])
    pinned = EXPECTED["pinning"]["pinned_key"]
    if case["error"] is None:
        check_pinned_key(manifest, pinned)
        assert pack_flat(SPECS, check_answer(answer, manifest, pinned)) == (GOLDEN_DIR / case["flat"]).read_bytes()
    else:
        with pytest.raises(ERRORS[case["error"]], match=MATCH[case["error"]]):
            check_pinned_key(manifest, pinned)  # what ServiceClient.manifest() does
        with pytest.raises(ERRORS[case["error"]], match=MATCH[case["error"]]):
            check_answer(answer, manifest, pinned)
        check_answer(answer, manifest)  # unpinned, the same answer passes: only the pin refuses it


@pytest.mark.parametrize("case", EXPECTED["requests"], ids=lambda c: c["json"])
def test_request_bodies_encode_to_the_golden_bytes(case):
    body = json.loads((GOLDEN_DIR / case["json"]).read_text())
    binary = (GOLDEN_DIR / case["binary"]).read_bytes()
    assert encode_request(body) == binary
    decoded = decode_request(binary)
    assert list(decoded) == list(body) or set(decoded) == set(body)
    for name, value in body.items():
        assert (decoded[name] == value) if isinstance(value, str) else np.array_equal(decoded[name], value)


@pytest.mark.parametrize("case", EXPECTED["zips"], ids=lambda c: c["file"])
def test_served_package_zips_unpack_or_are_refused(case, tmp_path):
    archive = GOLDEN_DIR / case["file"]
    if case["error"] is None:
        root = _unzip(archive, tmp_path)
        found = {f"{root.name}/{p.relative_to(root).as_posix()}": hashlib.sha256(p.read_bytes()).hexdigest()
                 for p in root.rglob("*") if p.is_file()}
        assert found == case["entries"]
    else:
        with pytest.raises(ERRORS[case["error"]], match="outside"):
            _unzip(archive, tmp_path / "dest")
        assert not (tmp_path / "evil.txt").exists()


def test_latency_statistics_follow_numpy():
    stats = EXPECTED["stats"]
    samples = np.array(stats["samples_ms"])
    assert stats["p50"] == pytest.approx(np.median(samples), abs=1e-12)
    assert stats["p90"] == pytest.approx(np.quantile(samples, 0.9), abs=1e-12)
    ordered = np.sort(samples)
    assert stats["trimmean"] == pytest.approx(ordered[2:20].mean(), abs=1e-12)  # minibench's subList(23/10, 23*9/10)
    assert stats["trimmean"] != pytest.approx(ordered[2:-2].mean(), abs=1e-12)  # not floor(n/10) cut at both ends


def test_the_sampling_scenarios_script_every_operation_their_traces_make():
    for scenario in EXPECTED["sampling"]:
        script, trace = scenario["script"], scenario["trace"]
        assert trace.count("forward") == len(script["forward_ms"]), scenario["name"]
        assert trace.count("memory") == len(script["memory_mb"]), scenario["name"]
        assert trace.count("generate") == len(script["generate_ms"]), scenario["name"]
        assert trace.count("clock") % 2 == 0 or scenario["name"] == "swap-refused", scenario["name"]


def test_a_user_models_kernel_and_vector_slots_decode_to_the_flat_bytes():
    model = EXPECTED["user_model"]
    manifest = load_manifest(GOLDEN_DIR / model["manifest"])
    specs = slot_specs_of(manifest)
    assert {s.name: list(s.shape) for s in specs} == model["shapes"]
    assert any(len(s.shape) == 4 for s in specs)
    slots = decode_safetensors((GOLDEN_DIR / model["blob"]).read_bytes(), specs)
    assert pack_flat(specs, slots) == (GOLDEN_DIR / model["flat"]).read_bytes()
TRIGGER = EXPECTED["trigger"]


@pytest.mark.parametrize("case", TRIGGER["configs"], ids=lambda c: c["why"][:40])
def test_trigger_configurations_parse_or_are_refused(case):
    if case["error"] is None:
        config = TriggerConfig.from_json(case["config"])
        assert TriggerConfig.from_json(config.to_json()) == config and config.score == case["config"]["score"]
    else:
        with pytest.raises(ERRORS[case["error"]], match="trigger"):
            TriggerConfig.from_json(case["config"])


@pytest.mark.parametrize("scenario", TRIGGER["scenarios"], ids=lambda s: s["name"])
def test_trigger_scenarios_give_the_golden_scores_bit_for_bit_and_decisions(scenario):
    trigger = RequestTrigger(TriggerConfig.from_json(scenario["config"]))
    if scenario["start"] is not None:
        trigger.start(scenario["start"])
    for number, step in enumerate(scenario["steps"]):
        decision = trigger.step(step["window"], step["confidence"])
        assert struct.pack(">d", decision.score).hex() == step["score_bits"], (scenario["name"], number)
        assert decision.request == step["request"], (scenario["name"], number)
        if decision.request and step["installed"]:
            trigger.start(step["window"])


@pytest.mark.parametrize("case", TRIGGER["errors"], ids=lambda c: c["why"][:40])
def test_trigger_inputs_it_cannot_read_are_refused(case):
    trigger = RequestTrigger(TriggerConfig.from_json(case["config"]))
    with pytest.raises(ERRORS[case["error"]], match="trigger"):
        trigger.start(case["start"])
        trigger.step(case["window"], case["confidence"])
