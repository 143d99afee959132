"""The reference device client against a real server: downloads, slot checks, and runtime parity end to end."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from service_fixtures import CACHE, KEY, free_port, make_tls_files, start_cli_serve

from toolkit.exporting.program import DeviceProgram
from toolkit.client import DeviceClient, ServiceClient, SlotAnswer, check_answer
from toolkit.errors import BlobError, ManifestError, ServiceError, SlotShapeError
from toolkit.training.serving import ServingPrograms
from toolkit.protocol.manifest import slot_specs_of
from toolkit.training.runs import load_run
from toolkit.protocol.signing import new_signing_key
from toolkit.protocol.slots import SlotSpec, encode_safetensors

TARGETS = ("executorch", "tflite")


@pytest.fixture(scope="module")
def run(svc_run):
    torch.set_num_threads(1)
    return load_run(svc_run, CACHE)


@contextmanager
def cli_serve(svc_run, svc_export, svc_keys, *options: str, ca_file: str = ""):
    """`cli.py serve` as a user starts it; yields its base URL."""
    process, url = start_cli_serve(svc_run, svc_export, svc_keys, free_port(), *options, ca_file=ca_file)
    try:
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)
            process.wait(30)


@pytest.fixture(scope="module")
def cli_server(svc_run, svc_export, svc_keys):
    """`cli.py serve --workers 2`."""
    with cli_serve(svc_run, svc_export, svc_keys, "--workers", "2") as url:
        yield url, ""


@pytest.fixture(scope="module")
def tls_server(svc_run, svc_export, svc_keys, tmp_path_factory):
    """`cli.py serve` over TLS (a test CA's certificate for 127.0.0.1) that signs its slot blobs."""
    folder = tmp_path_factory.mktemp("tls")
    ca, cert, key = make_tls_files(folder)
    new_signing_key(folder / "signing.pem")
    with cli_serve(svc_run, svc_export, svc_keys, "--ssl-certfile", str(cert), "--ssl-keyfile", str(key),
                   "--signing-key", str(folder / "signing.pem"), ca_file=str(ca)) as url:
        yield url, str(ca)


def _device_calls(run, export_dir: Path, devices: list[int]) -> dict[int, list[tuple]]:
    """Each device's test calls at the export's fixed shapes (the task's own eval calls)."""
    shape = json.loads((export_dir / "report.json").read_text())["shape"]
    calls: dict[int, list[tuple]] = {d: [] for d in devices}
    for device, inputs, _ in run.task.program_calls("test", shape):
        if device in calls and len(calls[device]) < 5:
            calls[device].append(tuple(inputs))
    return calls


@pytest.mark.parametrize("server", ["cli_server", "tls_server"])
def test_end_to_end_the_runtimes_score_like_pytorch_with_served_slots(server, request, run, svc_export, tmp_path):
    url, ca_file = request.getfixturevalue(server)
    devices = [int(d) for d in run.task.devices("test")[:2]]
    shape = json.loads((svc_export / "report.json").read_text())["shape"]
    reference_model = DeviceProgram.of(run.task, run.duet, shape).eval()
    calls = _device_calls(run, svc_export, devices)
    with ServiceClient(url, KEY, ca_file=ca_file) as service:
        for target in TARGETS:
            device = DeviceClient(service, target, tmp_path / target)
            path = device.setup()
            assert path.stat().st_size == device.manifest["targets"][target]["bytes"]
            assert ("signing" in device.manifest) == (server == "tls_server")  # and check_answer verified each blob
            served = {d: device.refresh(run.task.example_request(d)) for d in devices}
            first, second = (served[d] for d in devices)
            assert any(not np.allclose(first[k], second[k]) for k in first), "two histories, same slots"
            worst, programs = 0.0, ServingPrograms(run)
            for d in devices:
                assert calls[d], f"device {d} has no test calls"
                device.refresh(run.task.example_request(d))
                expected_slots = programs.slots_for_device(d, "test")
                for inputs in calls[d]:
                    got = device.score(inputs)
                    expected = reference_model.run(tuple(torch.from_numpy(np.asarray(x)) for x in inputs),
                                                   expected_slots)
                    assert got.shape == expected.shape
                    worst = max(worst, float(np.abs(got - expected).max()))
            assert worst <= 1e-4, (target, worst)
            device.refresh(run.task.example_request(devices[0]))  # the same call with the other device's slots
            assert not np.allclose(device.score(calls[devices[1]][0]),
                                   reference_model.run(tuple(torch.from_numpy(np.asarray(x))
                                                             for x in calls[devices[1]][0]), served[devices[1]]),
                                   atol=1e-4)


def test_a_corrupt_or_mismatched_blob_is_refused_and_the_last_good_slots_stay(svc_server, run, svc_export, tmp_path):
    devices = [int(d) for d in run.task.devices("test")[:2]]
    with ServiceClient(svc_server, KEY) as service:
        device = DeviceClient(service, "tflite", tmp_path)
        device.setup()
        good = device.refresh(run.task.example_request(devices[0]))
        inputs = _device_calls(run, svc_export, devices[:1])[devices[0]][0]
        scores = device.score(inputs)
        other = service.generate(run.task.example_request(devices[1]))
        version = device.manifest["model_version"]

        def refused(answer: SlotAnswer, error, match: str) -> None:
            with pytest.raises(error, match=match):
                device.install(answer)
            assert device.slots is good  # untouched
            np.testing.assert_array_equal(device.score(inputs), scores)

        flipped = bytearray(other.blob)
        flipped[-3] ^= 0xFF
        refused(SlotAnswer(bytes(flipped), other.sha256, version), BlobError, "corrupted in transit")
        truncated = other.blob[:100]
        refused(SlotAnswer(truncated, _sha(truncated), version), BlobError, "not valid safetensors")
        garbage = b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all"
        refused(SlotAnswer(garbage, _sha(garbage), version), BlobError, "safetensors")
        specs = slot_specs_of(device.manifest)
        wrong = [SlotSpec(specs[0].name, tuple(x + 1 for x in specs[0].shape))] + specs[1:]
        reshaped = encode_safetensors(wrong, {s.name: np.zeros(s.shape, np.float32) for s in wrong})
        refused(SlotAnswer(reshaped, _sha(reshaped), version), SlotShapeError, "should have shape")
        missing = encode_safetensors(specs[1:], {s.name: np.zeros(s.shape, np.float32) for s in specs[1:]})
        refused(SlotAnswer(missing, _sha(missing), version), SlotShapeError, "missing")
        refused(SlotAnswer(other.blob, other.sha256, "ffffffffffffffff"), ManifestError, "model version")
        assert device.install(other) is device.slots  # a good answer is still taken


def test_downloads_resume_and_a_wrong_digest_is_deleted(svc_server, tmp_path):
    with ServiceClient(svc_server, KEY) as service:
        manifest = service.manifest()
        info = manifest["targets"]["executorch"]
        whole = httpx.get(f"{svc_server}/v1/artifacts/executorch", headers={"Authorization": f"Bearer {KEY}"}).content
        partial = tmp_path / (info["file"] + ".partial")
        partial.write_bytes(whole[:1000])
        path = service.download(manifest, "executorch", tmp_path)
        assert path.read_bytes() == whole and not partial.exists()
        before = path.stat().st_mtime_ns
        assert service.download(manifest, "executorch", tmp_path).stat().st_mtime_ns == before  # cached
        path.unlink()
        partial.write_bytes(b"\x00" * 1000)  # a partial copy that is not a prefix of the file
        with pytest.raises(ManifestError, match="the download was deleted"):
            service.download(manifest, "executorch", tmp_path)
        assert not partial.exists()
        assert service.download(manifest, "executorch", tmp_path).read_bytes() == whole
        with pytest.raises(ManifestError, match="no target 'onnx'"):
            service.download(manifest, "onnx", tmp_path)
        for name in ("..", "../escape.pte", "/tmp/escape.pte"):  # a manifest nobody validated cannot aim outside
            hostile = {**manifest, "targets": {"executorch": {**info, "file": name}}}
            with pytest.raises(ManifestError, match="not a plain file name"):
                service.download(hostile, "executorch", tmp_path / "inside")
        assert not (tmp_path / "escape.pte").exists() and not (tmp_path / "inside").exists()


def test_service_refusals_reach_the_caller_as_service_errors(svc_server, run, tmp_path):
    with ServiceClient(svc_server, "duet_wrong") as service:
        with pytest.raises(ServiceError, match="401 unauthorized") as caught:
            service.manifest()
        assert caught.value.status == 401
    with ServiceClient(svc_server, KEY) as service:
        device = DeviceClient(service, "executorch", tmp_path)
        device.setup()
        assert device.slots is device.base_slots  # Base's slots until generated ones pass their checks
        base_answer = check_answer(service.base_slots(), device.manifest)
        assert all(np.array_equal(device.slots[k], base_answer[k]) for k in base_answer)
        with pytest.raises(ServiceError, match="is out of range") as caught:
            device.refresh({"device_id": "x", "items": [10 ** 9], "timestamps": [1]})
        assert caught.value.status == 422 and device.slots is device.base_slots
        assert device.last_refusal.startswith("ServiceError: POST /v1/generate: 422")
        good = device.refresh(run.task.example_request(int(run.task.devices("test")[0])))
        assert device.last_refusal is None and device.slots is good
        assert any(not np.array_equal(good[k], base_answer[k]) for k in good)
    with ServiceClient("http://127.0.0.1:9", KEY, timeout=2) as service:
        with pytest.raises(ServiceError, match="no answer from the service"):
            service.manifest()


def test_check_answer_accepts_float16_blobs(svc_server, run):
    with ServiceClient(svc_server, KEY) as service:
        manifest = service.manifest()
        answer = service.generate(run.task.example_request(int(run.task.devices("test")[0])), dtype="float16")
        slots = check_answer(answer, manifest)
        assert all(v.dtype == np.float32 for v in slots.values())


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# -- failures the real service never produces: tests/faulty_service.py --------------------------------------------
@pytest.fixture(scope="module")
def faulty(svc_server):
    from faulty_service import FaultyService

    headers = {"Authorization": f"Bearer {KEY}"}
    manifest = httpx.get(f"{svc_server}/v1/manifest", headers=headers).content
    blob = httpx.get(f"{svc_server}/v1/slots/base", headers=headers).content
    artifacts = {t: httpx.get(f"{svc_server}/v1/artifacts/{t}", headers=headers).content for t in TARGETS}
    with FaultyService(manifest, blob, artifacts) as url:
        yield url


def test_refused_answers_keep_the_slots_and_say_why(svc_server, faulty, run, tmp_path):
    body = run.task.example_request(int(run.task.devices("test")[0]))
    with ServiceClient(svc_server, KEY) as real:
        device = DeviceClient(real, "tflite", tmp_path)
        device.setup()
        good = device.refresh(body)
    cases = {"tampered": (BlobError, "corrupted in transit"), "wrong-version": (ManifestError, "model version"),
             "busy": (ServiceError, "503 overloaded"), "not-json": (ServiceError, "502 http_error: Bad Gateway"),
             "hangup": (ServiceError, "no answer from the service"), "silent": (ServiceError, "no answer")}
    for mode, (error, words) in cases.items():
        with ServiceClient(f"{faulty}/{mode}", KEY, timeout=1.0) as service:
            device.service = service
            with pytest.raises(error, match=words) as caught:
                device.refresh(body)
            assert device.slots is good, mode  # the last good slots stay
            assert device.last_refusal == f"{type(caught.value).__name__}: {caught.value}"
    assert caught.value.status == 0  # silent: no answer at all
    with ServiceClient(f"{faulty}/busy", KEY) as service:
        with pytest.raises(ServiceError) as caught:
            service.generate(body)
        assert (caught.value.status, caught.value.code, caught.value.retry_after) == (503, "overloaded", 2.0)


def test_bad_downloads_leave_no_program_behind(faulty, tmp_path):
    with ServiceClient(f"{faulty}/busy", KEY) as service:
        manifest = service.manifest()
    for mode, error, words in (("wrong-artifact", ManifestError, "fetch the manifest again"),
                               ("corrupt-artifact", ManifestError, "the download was deleted"),
                               ("hangup", ServiceError, "download interrupted")):
        with ServiceClient(f"{faulty}/{mode}", KEY, timeout=5) as service:
            with pytest.raises(error, match=words):
                service.download(manifest, "tflite", tmp_path / mode)
        assert not (tmp_path / mode / manifest["targets"]["tflite"]["file"]).exists(), mode


def test_a_download_that_runs_past_the_manifests_bytes_is_stopped_and_deleted(svc_server, tmp_path):
    from faulty_service import FaultyService

    headers = {"Authorization": f"Bearer {KEY}"}
    manifest = httpx.get(f"{svc_server}/v1/manifest", headers=headers).content
    artifacts = {t: httpx.get(f"{svc_server}/v1/artifacts/{t}", headers=headers).content for t in TARGETS}
    stand_in = FaultyService(manifest, b"", artifacts)
    with stand_in as url, ServiceClient(f"{url}/endless-artifact", KEY, timeout=10) as service:
        listed = service.manifest()
        with pytest.raises(ManifestError, match="sent more than the manifest's .* bytes; the download was stopped"):
            service.download(listed, "tflite", tmp_path / "device")
    assert list((tmp_path / "device").iterdir()) == []  # no program, no partial file
    assert stand_in.endless_sent < listed["targets"]["tflite"]["bytes"] + (16 << 20)  # it stopped reading early
