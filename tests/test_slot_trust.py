"""Slots that cannot be poisoned: bounds recorded at export, Ed25519-signed blobs, and TLS, on a real server."""

from __future__ import annotations

import base64
import hashlib

import numpy as np
import pytest
from service_fixtures import KEY, live_server, make_tls_files

from toolkit.client import DeviceClient, ServiceClient, SlotAnswer, check_answer
from toolkit.errors import BlobError, ConfigError, ManifestError, ServiceError
from toolkit.service.loadtest import LoadTestConfig, load_test
from toolkit.protocol.manifest import load_manifest, slot_specs_of
from toolkit.training.runs import load_run
from toolkit.training.serving import SLOT_BOUND_MARGIN, ServingPrograms
from toolkit.service.server import ServerOptions
from toolkit.protocol.signing import load_signing_key, new_signing_key, public_key_text, sign, verify
from toolkit.protocol.slots import decode_safetensors, encode_safetensors


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory):
    path = tmp_path_factory.mktemp("signing") / "key.pem"
    new_signing_key(path)
    return path


@pytest.fixture(scope="module")
def signed_server(svc_config, signing_key):
    with live_server(svc_config, signing_key=str(signing_key)) as url:
        yield url


def rewritten(answer: SlotAnswer, manifest, scale: float, signature: str | None = None) -> SlotAnswer:
    """The answer's slots times `scale`, re-encoded with a correct sha256 (what a tamperer on the way would send)."""
    specs = slot_specs_of(manifest)
    slots = {name: values * scale for name, values in decode_safetensors(answer.blob, specs).items()}
    blob = encode_safetensors(specs, slots, metadata={"model_version": manifest["model_version"]})
    return SlotAnswer(blob, hashlib.sha256(blob).hexdigest(), answer.model_version,
                      answer.signature if signature is None else signature)


def test_the_export_records_a_bound_per_slot_that_every_test_device_stays_under(svc_run, svc_export):
    manifest = load_manifest(svc_export)
    bounds = {s["name"]: s["max_abs"] for s in manifest["slots"]}
    assert set(bounds) == {s.name for s in slot_specs_of(manifest)} and min(bounds.values()) > 0
    run = load_run(svc_run)
    programs = ServingPrograms(run)
    for device in run.task.devices("test")[:20]:
        for name, values in programs.slots_for_device(int(device)).items():
            assert np.abs(values).max() <= bounds[name] / SLOT_BOUND_MARGIN * 2, (device, name)


def test_slots_beyond_their_bound_are_refused_and_the_last_good_ones_stay(svc_server, svc_run, tmp_path):
    run = load_run(svc_run)
    with ServiceClient(svc_server, KEY) as service:
        device = DeviceClient(service, "tflite", tmp_path)
        device.setup()
        good = device.refresh(run.task.example_request(int(run.task.devices("test")[0])))
        answer = service.generate(run.task.example_request(int(run.task.devices("test")[1])))
        with pytest.raises(BlobError, match="beyond its bound"):
            device.install(rewritten(answer, device.manifest, 1000.0))
        assert device.slots is good and "beyond its bound" in device.last_refusal
        assert device.install(rewritten(answer, device.manifest, 1.0))  # the same slots unscaled pass


def test_a_signing_service_publishes_its_key_and_signs_every_blob(signed_server, svc_run, signing_key):
    run = load_run(svc_run)
    body = run.task.example_request(int(run.task.devices("test")[0]))
    with ServiceClient(signed_server, KEY) as service:
        manifest = service.manifest()
        assert manifest["signing"]["algorithm"] == "ed25519"
        for answer in (service.generate(body), service.generate(body, binary=True), service.base_slots(),
                       service.base_slots("float16")):
            assert len(base64.b64decode(answer.signature, validate=True)) == 64
            check_answer(answer, manifest)  # verifies it against the manifest's key
        answer = service.generate(body)
    tampered = rewritten(answer, manifest, 1.001)  # within bounds, sha recomputed: only the signature can tell
    with pytest.raises(BlobError, match="signature does not match"):
        check_answer(tampered, manifest)
    with pytest.raises(BlobError, match="not signed"):
        check_answer(SlotAnswer(answer.blob, answer.sha256, answer.model_version, ""), manifest)
    with pytest.raises(BlobError, match="not base64"):
        check_answer(SlotAnswer(answer.blob, answer.sha256, answer.model_version, "!!"), manifest)
    own = sign(load_signing_key(signing_key), tampered.blob)  # the right key signs anything: the check is the key
    check_answer(rewritten(answer, manifest, 1.001, own), manifest)


def test_a_blob_signed_for_another_run_is_refused_though_its_header_names_this_one(signed_server, svc_run,
                                                                                 signing_key, tmp_path):
    run = load_run(svc_run)
    bodies = [run.task.example_request(int(d)) for d in run.task.devices("test")[:2]]
    key = load_signing_key(signing_key)
    with ServiceClient(signed_server, KEY) as service:
        device = DeviceClient(service, "tflite", tmp_path)
        device.setup()
        good = device.refresh(bodies[0])
        answer = service.generate(bodies[1])
    manifest = device.manifest
    specs = slot_specs_of(manifest)
    slots = decode_safetensors(answer.blob, specs)
    for metadata, says in (({"model_version": "f" * 16, "task": manifest["task"]}, "names model version ffff"),
                           ({"task": manifest["task"]}, "names no model version")):
        blob = encode_safetensors(specs, slots, metadata=metadata)  # the same key signs it: a blob of another run
        forged = SlotAnswer(blob, hashlib.sha256(blob).hexdigest(), manifest["model_version"], sign(key, blob))
        with pytest.raises(BlobError, match=says):
            device.install(forged)
        assert device.slots is good and says in device.last_refusal
    own = encode_safetensors(specs, slots, metadata={"model_version": manifest["model_version"],
                                                     "task": manifest["task"]})
    assert device.install(SlotAnswer(own, hashlib.sha256(own).hexdigest(), manifest["model_version"], sign(key, own)))


def test_a_pinned_key_is_used_and_a_manifest_cannot_replace_or_drop_it(signed_server, svc_server, svc_run,
                                                                       signing_key, tmp_path):
    run = load_run(svc_run)
    body = run.task.example_request(int(run.task.devices("test")[0]))
    pinned = public_key_text(load_signing_key(signing_key))
    with ServiceClient(signed_server, KEY, pinned_key=pinned) as service:
        device = DeviceClient(service, "tflite", tmp_path / "pinned")
        device.setup()
        assert device.refresh(body) and device.last_refusal is None
    other = new_signing_key(tmp_path / "other.pem")
    with ServiceClient(signed_server, KEY, pinned_key=other) as service:
        with pytest.raises(ManifestError, match="names the signing key .* but this client is pinned"):
            DeviceClient(service, "tflite", tmp_path / "other").setup()
    with ServiceClient(svc_server, KEY, pinned_key=pinned) as service:  # a service that signs nothing
        with pytest.raises(ManifestError, match="carries no signing key, but this client is pinned"):
            service.manifest()


def test_signing_keys_are_never_overwritten_and_bad_key_files_are_one_line_errors(tmp_path, svc_config):
    path = tmp_path / "key.pem"
    public = new_signing_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ConfigError, match="never overwritten"):
        new_signing_key(path)
    assert new_signing_key(tmp_path / "other.pem") != public
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="bad.pem: not an unencrypted PEM private key"):
        load_signing_key(tmp_path / "bad.pem")
    with pytest.raises(BlobError, match="not an Ed25519"):
        verify("AAAA", b"blob", "A" * 88)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def test_the_load_test_and_the_client_speak_tls_and_refuse_an_unknown_ca(svc_config, tls_files, tmp_path):
    ca, cert, key = tls_files
    options = ServerOptions(ssl_certfile=str(cert), ssl_keyfile=str(key))
    with live_server(svc_config, options) as url:
        https = url.replace("http://", "https://")
        result = load_test(LoadTestConfig(https, KEY, concurrency=4, requests=40, ca_file=str(ca)))
        assert result["ok"] == 40, result
        with ServiceClient(https, KEY, ca_file=str(ca)) as service:
            assert service.manifest()["model_version"]
        with ServiceClient(https, KEY) as service, pytest.raises(ServiceError, match="no answer"):
            service.manifest()  # the system's CAs do not know the test CA
        with ServiceClient(url, KEY) as service, pytest.raises(ServiceError):
            service.manifest()  # plain http to a TLS port


def test_tls_options_are_checked_before_serving(tls_files, tmp_path):
    ca, cert, key = tls_files
    with pytest.raises(ConfigError, match="both"):
        ServerOptions(ssl_certfile=str(cert))
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        ServerOptions(ssl_certfile=str(cert), ssl_keyfile=str(ca))  # a certificate is not its key
    (tmp_path / "empty.pem").write_text("")
    with pytest.raises(ConfigError, match="not a readable PEM CA"):
        ServiceClient("https://127.0.0.1:1", KEY, ca_file=str(tmp_path / "empty.pem"))


@pytest.mark.parametrize("bound", [float("nan"), float("inf")])
def test_a_manifest_bound_that_is_not_a_finite_number_is_refused_everywhere(svc_export, tmp_path, bound):
    import json

    from toolkit.errors import ManifestError
    from toolkit.protocol.manifest import validate_manifest

    manifest = load_manifest(svc_export)
    manifest["slots"][0]["max_abs"] = bound
    with pytest.raises(ManifestError, match="slots/0/max_abs: .* is not a finite number"):
        validate_manifest(manifest, "service manifest")  # what the client checks a served manifest with
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))  # Python writes the literal NaN or Infinity
    with pytest.raises(ManifestError, match="manifest.json: not readable JSON .*is not a number JSON allows"):
        load_manifest(tmp_path)  # what the service and the exporter read
