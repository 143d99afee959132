"""The generation service on a real uvicorn server on 127.0.0.1: keys, manifest, artifacts, generate, bad input."""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx
import numpy as np
import pytest
from service_fixtures import KEY, OTHER_KEY, auth, live_server, nan_generator_copy

from toolkit.model.slots import base_slots, slot_specs
from toolkit.training.serving import ServingPrograms
from toolkit.protocol.manifest import load_manifest, slot_specs_of
from toolkit.training.runs import load_run
from toolkit.protocol.slots import decode_safetensors
from toolkit.protocol.wire import MEDIA_TYPE as WIRE_TYPE
from toolkit.protocol.wire import encode_request


@pytest.fixture(scope="module")
def run(svc_run):
    import torch

    torch.set_num_threads(1)
    return load_run(svc_run)


@pytest.fixture(scope="module")
def manifest(svc_export):
    return load_manifest(svc_export)


def _body(run, device: int) -> dict:
    return run.task.example_request(int(device))


def _generate(url, body, key=KEY, **params):
    return httpx.post(f"{url}/v1/generate", json=body, headers=auth(key), params=params, timeout=30)


# -- keys ----------------------------------------------------------------------------------------------
def test_every_v1_call_needs_a_known_key(svc_server):
    for path in ("/v1/manifest", "/v1/artifacts/tflite"):
        missing = httpx.get(f"{svc_server}{path}")
        assert missing.status_code == 401 and "missing API key" in missing.json()["message"]
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = httpx.get(f"{svc_server}{path}", headers=auth("duet_not-a-key"))
        assert wrong.status_code == 401 and wrong.json() == {"error": "unauthorized",
                                                             "message": "API key not recognised"}
        basic = httpx.get(f"{svc_server}{path}", headers={"Authorization": f"Basic {KEY}"})
        assert basic.status_code == 401
    denied = httpx.post(f"{svc_server}/v1/generate", json={"device_id": "1", "items": [1], "timestamps": [1]})
    assert denied.status_code == 401
    assert httpx.get(f"{svc_server}/v1/manifest", headers=auth(OTHER_KEY)).status_code == 200
    assert httpx.get(f"{svc_server}/healthz").json()["status"] == "ok"  # health and metrics stay open


def test_keys_file_holds_only_hashes(tmp_path, svc_keys):
    from toolkit.errors import ConfigError
    from toolkit.service.auth import KeyStore, hash_key

    assert KEY not in svc_keys.read_text() and hash_key(KEY) in svc_keys.read_text()
    store = KeyStore.from_file(svc_keys)
    assert store.identify(KEY) == "phones" and store.identify(OTHER_KEY) == "lab"
    assert store.identify(KEY + "x") is None and store.identify("") is None
    plain = tmp_path / "plain.txt"
    plain.write_text(f"{KEY}\n")
    with pytest.raises(ConfigError, match=r"plain.txt:1: expected 'sha256:<64 hex digits> \[name\]'"):
        KeyStore.from_file(plain)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match="empty.txt: no API keys in it"):
        KeyStore.from_file(empty)


def test_keys_add_command_appends_a_hashed_line(tmp_path):
    from click.testing import CliRunner

    from cli import cli
    from toolkit.service.auth import KeyStore

    path = tmp_path / "keys.txt"
    first = CliRunner().invoke(cli, ["keys", "add", "--file", str(path), "--name", "fleet"])
    second = CliRunner().invoke(cli, ["keys", "add", "--file", str(path)])
    assert first.exit_code == 0 and second.exit_code == 0
    key1, key2 = first.output.strip(), second.output.strip()
    assert key1 != key2 and key1 not in path.read_text()
    store = KeyStore.from_file(path)
    assert store.identify(key1) == "fleet" and store.identify(key2) == "key2"


def test_keys_added_by_processes_at_once_are_all_kept(tmp_path):
    """Eight processes add 25 keys each, all starting together: every key is in the file, each once."""
    import subprocess
    import sys
    import time

    from service_fixtures import REPO

    from toolkit.service.auth import KeyStore

    path = tmp_path / "keys.txt"
    start = time.time() + 3  # after every interpreter has started
    script = ("import sys, time; from pathlib import Path; from toolkit.service.auth import add_key; "
              "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); "
              "print('\\n'.join(add_key(Path(sys.argv[1]), 'fleet') for _ in range(25)))")
    workers = [subprocess.Popen([sys.executable, "-c", script, str(path), str(start)], cwd=REPO,
                                stdout=subprocess.PIPE, text=True) for _ in range(8)]
    printed = [key for worker in workers for key in worker.communicate(timeout=120)[0].split()]
    assert all(worker.returncode == 0 for worker in workers) and len(printed) == 200
    store = KeyStore.from_file(path)
    assert len(store.keys) == 200 and all(store.identify(key) == "fleet" for key in printed)
    assert path.read_text().count("# DUET API keys") == 1


def test_keys_add_to_a_place_it_cannot_write_is_one_error(tmp_path):
    from click.testing import CliRunner

    from cli import cli

    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(cli, ["keys", "add", "--file", str(tmp_path / "file" / "keys.txt")])
    assert result.exit_code == 2 and "cannot add the key" in result.output and "Traceback" not in result.output


# -- manifest and artifacts ----------------------------------------------------------------------------
def test_manifest_is_the_exports_manifest_with_an_etag(svc_server, manifest):
    answer = httpx.get(f"{svc_server}/v1/manifest", headers=auth())
    assert answer.status_code == 200 and answer.json() == manifest
    assert answer.headers["x-model-version"] == manifest["model_version"]
    again = httpx.get(f"{svc_server}/v1/manifest", headers={**auth(), "If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_artifacts_come_with_sha256_etag_and_byte_ranges(svc_server, manifest):
    for target, info in manifest["targets"].items():
        full = httpx.get(f"{svc_server}/v1/artifacts/{target}", headers=auth())
        assert full.status_code == 200 and len(full.content) == info["bytes"]
        assert hashlib.sha256(full.content).hexdigest() == info["sha256"] == full.headers["x-artifact-sha256"]
        assert full.headers["etag"] == f'"{info["sha256"]}"' and full.headers["accept-ranges"] == "bytes"
        part = httpx.get(f"{svc_server}/v1/artifacts/{target}", headers={**auth(), "Range": "bytes=100-"})
        assert part.status_code == 206 and part.content == full.content[100:]
        assert part.headers["content-range"] == f"bytes 100-{info['bytes'] - 1}/{info['bytes']}"
        tail = httpx.get(f"{svc_server}/v1/artifacts/{target}", headers={**auth(), "Range": "bytes=-10"})
        assert tail.content == full.content[-10:]
        stale = httpx.get(f"{svc_server}/v1/artifacts/{target}",
                          headers={**auth(), "Range": "bytes=100-", "If-Range": '"0000"'})
        assert stale.status_code == 200 and stale.content == full.content  # another version: all of it
        cached = httpx.get(f"{svc_server}/v1/artifacts/{target}", headers={**auth(), "If-None-Match": full.headers["etag"]})
        assert cached.status_code == 304
        beyond = httpx.get(f"{svc_server}/v1/artifacts/{target}", headers={**auth(), "Range": f"bytes={info['bytes']}-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{info['bytes']}"
        huge = httpx.get(f"{svc_server}/v1/artifacts/{target}", headers={**auth(), "Range": "bytes=0-" + "9" * 4301})
        assert huge.status_code == 206 and huge.content == full.content  # the end is clamped to the file
        far = httpx.get(f"{svc_server}/v1/artifacts/{target}", headers={**auth(), "Range": "bytes=" + "9" * 4301 + "-"})
        assert far.status_code == 416 and far.json()["error"] == "range_not_satisfiable"
        padded = httpx.get(f"{svc_server}/v1/artifacts/{target}", headers={**auth(), "Range": "bytes=" + "0" * 5000 + "5-9"})
        assert padded.status_code == 206 and padded.content == full.content[5:10]
    unknown = httpx.get(f"{svc_server}/v1/artifacts/model.onnx", headers=auth())
    assert unknown.status_code == 404 and "this export has" in unknown.json()["message"]


def test_artifact_that_disagrees_with_the_manifest_stops_startup(svc_config, svc_export, tmp_path):
    import shutil

    from toolkit.errors import ManifestError

    copy = tmp_path / "export"
    shutil.copytree(svc_export, copy)
    target = sorted(load_manifest(copy)["targets"].items())[0][1]["file"]
    with (copy / target).open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ManifestError, match="but the manifest says"):
        with live_server(svc_config, exports_dir=str(copy)):
            pass


# -- generate ------------------------------------------------------------------------------------------
def test_generate_answers_the_devices_slots_as_safetensors(svc_server, run, manifest):
    device = int(run.task.devices("test")[0])
    answer = _generate(svc_server, _body(run, device))
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["x-model-version"] == manifest["model_version"]
    assert answer.headers["x-blob-sha256"] == hashlib.sha256(answer.content).hexdigest()
    specs = slot_specs_of(manifest)
    slots = decode_safetensors(answer.content, specs)
    assert list(slots) == [s["name"] for s in manifest["slots"]]
    expected = ServingPrograms(run).slots_for_device(device, "test")
    for name in slots:
        np.testing.assert_allclose(slots[name], expected[name], atol=1e-5)
    half = _generate(svc_server, _body(run, device), dtype="float16")
    assert half.status_code == 200 and half.headers["x-slot-dtype"] == "float16"
    assert len(half.content) < len(answer.content)
    np.testing.assert_allclose(decode_safetensors(half.content, specs)[specs[0].name], slots[specs[0].name],
                               atol=2e-2, rtol=1e-2)


def test_base_slots_are_the_heads_the_generator_starts_from(svc_server, run, manifest):
    answer = httpx.get(f"{svc_server}/v1/slots/base", headers=auth())
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["x-model-version"] == manifest["model_version"]
    assert answer.headers["x-blob-sha256"] == hashlib.sha256(answer.content).hexdigest()
    slots = decode_safetensors(answer.content, slot_specs_of(manifest))
    for spec, param in zip(slot_specs_of(manifest), base_slots(run.duet)):
        np.testing.assert_array_equal(slots[spec.name], param.detach().numpy())
    half = httpx.get(f"{svc_server}/v1/slots/base", headers=auth(), params={"dtype": "float16"})
    assert half.status_code == 200 and half.headers["x-slot-dtype"] == "float16"
    assert len(half.content) < len(answer.content)
    assert httpx.get(f"{svc_server}/v1/slots/base").status_code == 401
    wrong = httpx.get(f"{svc_server}/v1/slots/base", headers=auth(), params={"dtype": "int8"})
    assert wrong.status_code == 422 and "dtype='int8'" in wrong.json()["message"]


def test_two_devices_with_different_histories_get_different_slots(svc_server, run, manifest):
    first, second = (int(d) for d in run.task.devices("test")[:2])
    assert _body(run, first)["items"] != _body(run, second)["items"]
    specs = slot_specs_of(manifest)
    a = decode_safetensors(_generate(svc_server, _body(run, first)).content, specs)
    b = decode_safetensors(_generate(svc_server, _body(run, second)).content, specs)
    assert any(not np.allclose(a[s.name], b[s.name]) for s in specs)


@pytest.mark.parametrize("body, status, message", [
    ("garbage{", 400, "not valid JSON"),
    ("", 400, "body is empty"),
    ('{"device_id": "1", "items": [1], "timestamps": [NaN]}', 400, "not valid JSON"),
    ("[" * 5000, 400, "nested more than 64 levels deep"),  # checked before parsing
    ("[" * 300 + "]" * 300, 400, "nested more than 64 levels deep"),  # deep enough for the schema checker to recurse
    ('{"device_id": ' + "[" * 1000 + "]" * 1000 + ', "items": [1], "timestamps": [1]}', 400, "nested more than 64"),
    ('{"device_id": "[[[[", "items": [[[[[1]]]]], "timestamps": [1]}', 422, "items"),  # brackets in strings: shallow
    ("[1, 2]", 422, 'is not of type "object"'),
    ('{"device_id": "1", "items": [999999], "timestamps": [1]}', 422, "is out of range"),
    ('{"device_id": "1", "items": [0], "timestamps": [1]}', 422, "is out of range"),
    ('{"device_id": "1", "items": [], "timestamps": []}', 422, "'items' is empty"),
    ('{"device_id": "1", "items": ' + json.dumps(list(range(1, 400))) + ', "timestamps": ' +
     json.dumps(list(range(399))) + "}", 422, "at most"),
    ('{"device_id": "1", "items": ["7"], "timestamps": [1]}', 422, "must hold integers"),
    ('{"device_id": "1", "items": [true], "timestamps": [1]}', 422, "must hold integers"),
    ('{"device_id": "1", "items": [1, 2], "timestamps": [1]}', 422, "'timestamps' has 1 samples but 'items' has 2"),
    ('{"device_id": "1", "items": [1], "timestamps": [1], "extra": 1}', 422, "'extra' was unexpected"),
    ('{"items": [1], "timestamps": [1]}', 422, "device_id"),
])
def test_bad_bodies_get_a_4xx_that_says_what_is_wrong(svc_server, run, body, status, message):
    answer = httpx.post(f"{svc_server}/v1/generate", content=body.encode(),
                        headers={**auth(), "Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert message in answer.json()["message"]
    assert "Traceback" not in answer.text
    assert _generate(svc_server, _body(run, int(run.task.devices("test")[0]))).status_code == 200  # still serving


def test_a_binary_body_gets_exactly_the_json_bodys_blob(svc_server, run):
    from toolkit.client import ServiceClient

    body = _body(run, int(run.task.devices("test")[1]))
    as_json = _generate(svc_server, body)
    binary = httpx.post(f"{svc_server}/v1/generate", content=encode_request(body),
                        headers={**auth(), "Content-Type": WIRE_TYPE}, timeout=30)
    assert binary.status_code == 200 and binary.content == as_json.content
    with ServiceClient(svc_server, KEY) as service:
        assert service.generate(body, binary=True).blob == as_json.content


def _binary_variant(run, **changes) -> bytes:
    body = dict(_body(run, int(run.task.devices("test")[0])), **changes)
    return encode_request({k: v for k, v in body.items() if v is not None})


def _binary_shape(run, shape: list[int]) -> bytes:
    """A binary body whose 'items' is an empty tensor of `shape` (no data bytes)."""
    import struct

    header = json.dumps({"__metadata__": {"device_id": "1"}, "items": {"dtype": "I64", "shape": shape,
                                                                      "data_offsets": [0, 0]},
                         "timestamps": {"dtype": "I64", "shape": [0], "data_offsets": [0, 0]}}).encode()
    return struct.pack("<Q", len(header)) + header


@pytest.mark.parametrize("make, status, message", [
    (lambda run: b"\x00" * 3, 400, "not a valid binary request"),
    (lambda run: _binary_variant(run)[:-4], 400, "not a valid binary request"),
    (lambda run: _binary_variant(run, device_id=None), 422, "'device_id' is required"),
    (lambda run: _binary_variant(run, extra=[1]), 422, "unknown field 'extra'"),
    (lambda run: _binary_variant(run, device_id=[1]), 422, "'device_id' must be a string in '__metadata__'"),
    (lambda run: _binary_variant(run, device_id="x" * 200), 422, "device_id"),
    (lambda run: _binary_variant(run, items=[1.5, 2.0]), 422, "'items' must be a 1-D integer tensor"),
    (lambda run: _binary_variant(run, items=[[1, 2]]), 422, "'items' must be a 1-D integer tensor"),
    (lambda run: _binary_variant(run, items=[999999]), 422, "is out of range"),
    (lambda run: _binary_variant(run, timestamps=[-5]), 422, "out of range"),
    (lambda run: _binary_shape(run, [2**62, 0]), 400, "larger than the whole"),  # no byte, but numpy cannot hold it
    (lambda run: _binary_shape(run, [2**31, 2**31, 2**31, 0]), 400, "larger than the whole"),
])
def test_bad_binary_bodies_get_a_4xx_that_says_what_is_wrong(svc_server, run, make, status, message):
    answer = httpx.post(f"{svc_server}/v1/generate", content=make(run), headers={**auth(), "Content-Type": WIRE_TYPE})
    assert answer.status_code == status, answer.text
    assert message in answer.json()["message"]
    assert _generate(svc_server, _body(run, int(run.task.devices("test")[0]))).status_code == 200  # still serving


def test_wrong_content_type_size_and_dtype_are_refused(svc_server, run):
    body = json.dumps(_body(run, int(run.task.devices("test")[0]))).encode()
    form = httpx.post(f"{svc_server}/v1/generate", content=body, headers={**auth(), "Content-Type": "text/plain"})
    assert form.status_code == 415 and "application/json or application/octet-stream" in form.json()["message"]
    huge = httpx.post(f"{svc_server}/v1/generate", content=b" " * 9000 + body,
                      headers={**auth(), "Content-Type": "application/json"})
    assert huge.status_code == 413 and "at most 8192" in huge.json()["message"]

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(20):
            yield b" " * 1000

    streamed = httpx.post(f"{svc_server}/v1/generate", content=chunks(), headers={**auth(), "Content-Type": "application/json"})
    assert streamed.status_code == 413 and "exceeds 8192" in streamed.json()["message"]
    dtype = httpx.post(f"{svc_server}/v1/generate", content=body, params={"dtype": "int4"},
                       headers={**auth(), "Content-Type": "application/json"})
    assert dtype.status_code == 422 and "float32, float16" in dtype.json()["message"]
    typo = httpx.post(f"{svc_server}/v1/generate", content=body, params={"dtyp": "float16"},
                      headers={**auth(), "Content-Type": "application/json"})
    assert typo.status_code == 422 and "unknown query parameter 'dtyp'; it takes dtype" in typo.json()["message"]
    assert httpx.get(f"{svc_server}/v1/manifest", params={"v": "1"}, headers=auth()).status_code == 422
    assert httpx.get(f"{svc_server}/v1/generate", headers=auth()).status_code == 405
    assert httpx.get(f"{svc_server}/v1/nowhere", headers=auth()).json()["error"] == "not_found"
    assert _generate(svc_server, _body(run, int(run.task.devices("test")[0]))).status_code == 200


def test_a_bad_body_does_not_fail_the_batch_it_shares(svc_config, run):
    devices = [int(d) for d in run.task.devices("test")[:4]]
    good = [_body(run, d) for d in devices]
    bad = dict(good[0], timestamps=good[0]["timestamps"][:-1] + [1, 2])  # passes the schema, not the task
    with live_server(svc_config, batch_window_ms=200) as url:
        async def fire():
            async with httpx.AsyncClient(headers=auth(), timeout=30) as client:
                return await asyncio.gather(*(client.post(f"{url}/v1/generate", json=b) for b in good + [bad]))

        answers = asyncio.run(fire())
        assert [a.status_code for a in answers] == [200, 200, 200, 200, 422]
        assert "'timestamps' has" in answers[-1].json()["message"]
        sizes = httpx.get(f"{url}/metrics").text
    assert "duet_generate_batch_size_count 1" in sizes  # all five shared one forward


def test_rate_limit_is_per_key_with_retry_after(svc_config, run):
    with live_server(svc_config, rate_limit=0.5, rate_burst=3) as url:
        codes = [httpx.get(f"{url}/v1/manifest", headers=auth()).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = httpx.get(f"{url}/v1/manifest", headers=auth())
        assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
        assert "rate limit" in limited.json()["message"]
        assert httpx.get(f"{url}/v1/manifest", headers=auth(OTHER_KEY)).status_code == 200  # its own bucket


def test_full_queue_answers_503_with_retry_after(svc_config, run):
    body = _body(run, int(run.task.devices("test")[0]))
    with live_server(svc_config, queue_size=2, batch_window_ms=500) as url:
        async def fire():
            async with httpx.AsyncClient(headers=auth(), timeout=30) as client:
                return await asyncio.gather(*(client.post(f"{url}/v1/generate", json=body) for _ in range(8)))

        answers = asyncio.run(fire())
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 200] + [503] * 6
        refused = next(a for a in answers if a.status_code == 503)
        assert refused.headers["retry-after"] == "1" and "queue holds 2" in refused.json()["message"]
        assert _generate(url, body).status_code == 200  # drained: serving again
        assert 'duet_generate_rejected_total{reason="queue_full"} 6' in httpx.get(f"{url}/metrics").text


def test_metrics_count_requests_errors_latency_and_batches(svc_server, run):
    _generate(svc_server, _body(run, int(run.task.devices("test")[0])))
    httpx.get(f"{svc_server}/v1/manifest")
    text = httpx.get(f"{svc_server}/metrics").text
    assert 'duet_http_requests_total{endpoint="/v1/generate",status="200"}' in text
    assert 'duet_http_errors_total{endpoint="/v1/manifest",status="401"}' in text
    assert 'duet_http_request_duration_seconds_bucket{endpoint="/v1/generate",le="+Inf"}' in text
    assert "duet_generate_batch_size_bucket" in text and "# TYPE duet_generate_batch_size histogram" in text


def test_batching_off_still_answers_every_request(svc_config, run):
    bodies = [_body(run, int(d)) for d in run.task.devices("test")[:6]]
    with live_server(svc_config, batching=False) as url:
        async def fire():
            async with httpx.AsyncClient(headers=auth(), timeout=30) as client:
                return await asyncio.gather(*(client.post(f"{url}/v1/generate", json=b) for b in bodies))

        assert [a.status_code for a in asyncio.run(fire())] == [200] * 6
        assert "duet_generate_batch_size_count 6" in httpx.get(f"{url}/metrics").text


def test_static_floor_is_hidden_and_the_same_size(svc_server, run):
    body = _body(run, int(run.task.devices("test")[0]))
    floor = httpx.post(f"{svc_server}/v1/static", json=body, headers=auth())
    assert floor.status_code == 200 and len(floor.content) == len(_generate(svc_server, body).content)
    assert "/v1/static" not in httpx.get(f"{svc_server}/openapi.json").json()["paths"]


def test_an_export_of_other_weights_stops_startup(svc_config, svc_export, tmp_path):
    import shutil

    from toolkit.errors import ManifestError

    copy = tmp_path / "export"
    shutil.copytree(svc_export, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["model_version"] = "0123456789abcdef"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="was exported from weights 0123456789abcdef"):
        with live_server(svc_config, exports_dir=str(copy)):
            pass


def test_a_run_whose_config_changed_since_the_export_stops_startup(svc_config, svc_run, tmp_path):
    import shutil

    from toolkit.errors import ManifestError

    copy = tmp_path / "run"
    shutil.copytree(svc_run, copy)
    config = json.loads((copy / "config.json").read_text())
    config["task_config"]["model"]["time_std"] *= 2  # same weights, read differently
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ManifestError, match="was exported from another config.json"):
        with live_server(svc_config, run_dir=str(copy)):
            pass


def test_a_run_that_cannot_generate_does_not_start(svc_config, svc_run, svc_export, tmp_path):
    """Everything the start-up checks compare agrees (the export names the copy's weights); only generation fails."""
    import shutil

    from toolkit.errors import ConfigError
    from toolkit.protocol.manifest import model_version

    run_copy = nan_generator_copy(svc_run, tmp_path / "run")
    export_copy = tmp_path / "export"
    shutil.copytree(svc_export, export_copy)
    manifest = json.loads((export_copy / "manifest.json").read_text())
    manifest["model_version"] = model_version(run_copy / "base.safetensors", run_copy / "duet.safetensors")
    (export_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="generating a test device's slots failed"):
        with live_server(svc_config, run_dir=str(run_copy), exports_dir=str(export_copy), static_floor=False):
            pass  # (as `cli.py serve` starts it: the benchmark's static floor would generate a blob at start-up)


def test_the_published_examples_hold_no_test_devices_data(svc_server, run):
    doc = httpx.get(f"{svc_server}/openapi.json").json()
    examples = doc["paths"]["/v1/generate"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    bodies = [e["value"] for e in examples.values()]
    assert len(bodies) == 4
    real = [_body(run, int(d)) for d in run.task.devices("test")]
    real_ids = {b["device_id"] for b in real}
    for body in bodies:
        assert body["device_id"] not in real_ids
        assert all(body["items"] != r["items"] and body["timestamps"] != r["timestamps"] for r in real)
        assert not set(zip(body["items"], body["timestamps"])) & {pair for r in real
                                                                  for pair in zip(r["items"], r["timestamps"])}
        assert _generate(svc_server, body).status_code == 200  # still what the service accepts


def test_blob_encoder_writes_exactly_what_encode_safetensors_writes(run, manifest):
    from toolkit.service.slot_maker import BlobEncoder
    from toolkit.protocol.slots import encode_safetensors

    specs = slot_specs_of(manifest)
    slots = ServingPrograms(run).slots_for_device(int(run.task.devices("test")[0]), "test")
    metadata = {"model_version": manifest["model_version"], "task": run.task.name}
    broken = np.full(specs[0].shape, np.nan, np.float32)
    huge = np.full(specs[0].shape, 1e6, np.float32)  # finite as float32, infinite as float16
    rows = [slots, slots, dict(slots, **{specs[0].name: broken}), dict(slots, **{specs[0].name: huge})]
    batch = {spec.name: np.stack([row[spec.name] for row in rows]) for spec in specs}
    blobs = BlobEncoder(specs, metadata).encode_batch(batch, ["float32", "float16", "float32", "float16"])
    for blob, dtype in zip(blobs[:2], ("float32", "float16")):
        assert blob.data == encode_safetensors(specs, slots, dtype, metadata)
        assert blob.sha256 == hashlib.sha256(blob.data).hexdigest()
    assert isinstance(blobs[2], Exception) and "NaN or infinite values as float32" in str(blobs[2])
    assert isinstance(blobs[3], Exception) and "NaN or infinite values as float16" in str(blobs[3])


def test_a_batch_encodes_each_row_in_its_dtype_and_refuses_only_the_bad_row(run, manifest):
    from toolkit.service.slot_maker import BlobEncoder
    from toolkit.protocol.slots import encode_safetensors

    specs = slot_specs_of(manifest)
    devices = [int(d) for d in run.task.devices("test")[:3]]
    programs = ServingPrograms(run)
    rows = [programs.slots_for_device(d, "test") for d in devices]
    batch = {spec.name: np.stack([row[spec.name] for row in rows]) for spec in specs}
    batch[specs[0].name][1, 0] = np.inf
    metadata = {"model_version": manifest["model_version"], "task": run.task.name}
    blobs = BlobEncoder(specs, metadata).encode_batch(batch, ["float16", "float32", "float32"])
    assert blobs[0].data == encode_safetensors(specs, rows[0], "float16", metadata)
    assert isinstance(blobs[1], Exception) and "NaN or infinite values as float32" in str(blobs[1])
    assert blobs[2].data == encode_safetensors(specs, rows[2], "float32", metadata)
    with pytest.raises(Exception, match="should have shape"):
        BlobEncoder(specs, metadata).encode_batch(batch, ["float32", "float32"])


def test_slot_maker_answers_a_bad_body_alone_and_the_others_as_if_it_were_absent(run, manifest):
    from toolkit.errors import RequestError
    from toolkit.service.slot_maker import GenerateJob, SlotMaker

    maker = SlotMaker(run, ServingPrograms(run), slot_specs_of(manifest), manifest["model_version"])
    good = [_body(run, int(d)) for d in run.task.devices("test")[:3]]
    bad = dict(good[0], items=[10**9] * len(good[0]["items"]))
    mixed = maker([GenerateJob(b, "float32") for b in (good[0], bad, good[1], good[2])])
    clean = maker([GenerateJob(b, "float32") for b in good])
    assert isinstance(mixed[1], RequestError) and "is out of range" in str(mixed[1])
    assert [blob.data for blob in mixed[::2] + mixed[3:]] == [blob.data for blob in clean]


def test_a_client_that_hangs_up_mid_body_is_a_client_error_not_a_500(svc_server, capfd):
    import socket
    import time

    def errors(text: str, status: str) -> float:
        line = f'duet_http_requests_total{{endpoint="/v1/generate",status="{status}"}}'
        return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(line))

    before = httpx.get(f"{svc_server}/metrics").text
    host, port = svc_server.removeprefix("http://").split(":")
    for _ in range(5):
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(f"POST /v1/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                         f"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"device_id\": ".encode())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = httpx.get(f"{svc_server}/metrics").text
        if errors(after, "400") - errors(before, "400") >= 5:
            break
        time.sleep(0.1)
    assert errors(after, "400") - errors(before, "400") == 5
    assert errors(after, "500") == errors(before, "500")
    assert "Traceback" not in capfd.readouterr().err  # uvicorn's own handlers write its error log to stderr
    assert httpx.get(f"{svc_server}/healthz").status_code == 200


def test_an_address_that_keeps_failing_authentication_is_held_off(svc_config):
    with live_server(svc_config, auth_failure_rate=0.5, auth_failure_burst=3) as url:
        statuses = [httpx.get(f"{url}/v1/manifest", headers=auth("duet_guess")).status_code for _ in range(5)]
        assert statuses == [401, 401, 401, 429, 429]
        held = httpx.get(f"{url}/v1/manifest", headers=auth())  # even the right key waits: the address is held
        assert held.status_code == 429 and held.json()["error"] == "too_many_failed_logins"
        assert int(held.headers["retry-after"]) >= 1
        assert httpx.get(f"{url}/healthz").status_code == 200  # outside /v1/: no key, no hold


def test_errors_quote_a_bad_value_by_its_beginning_and_refuse_repeated_or_slashed_paths(svc_server, run):
    body = {**_body(run, int(run.task.devices("test")[0])), "device_id": "x" * 6_000}  # under the 8 KiB limit
    answer = httpx.post(f"{svc_server}/v1/generate", json=body, headers=auth(), timeout=30)
    assert answer.status_code == 422 and "xxxx" in answer.json()["message"]
    assert len(answer.json()["message"]) <= 500 and answer.json()["message"].endswith("characters)")
    repeated = httpx.get(f"{svc_server}/v1/slots/base?dtype=float16&dtype=float32", headers=auth())
    assert repeated.status_code == 422 and "'dtype' given more than once" in repeated.json()["message"]
    slashed = httpx.get(f"{svc_server}/v1/manifest/", headers={**auth(), "Host": "evil.example"})
    assert slashed.status_code == 404 and "location" not in slashed.headers
