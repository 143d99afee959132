"""The reference device client: what the Android and iOS apps do, in Python, for tests, scripts and benchmarks.

    with ServiceClient("http://127.0.0.1:8000", api_key) as service:
        device = DeviceClient(service, "executorch", Path("device-files"))
        device.setup()                       # manifest, model file (sha256-checked, resumable), runtime
        device.refresh(body)                 # POST the device's samples; the slots are checked, then kept
        scores = device.score(inputs)        # the program, run in its runtime with the last good slots

A blob that is corrupt, from another model version, or whose slots disagree with the manifest is refused
with a typed error, and the device keeps the slots it had (Base's until generated ones pass their checks).
`ServiceClient(..., pinned_key=PUBLIC_KEY)` fixes the key that signs slot blobs: a manifest that names another
key, or none, is refused, so a manifest from elsewhere cannot swap it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from toolkit.protocol import routes
from toolkit.errors import BlobError, ManifestError, ServiceError, SlotShapeError

logger = logging.getLogger(__name__)

CHUNK = 1 << 16


@dataclass(frozen=True)
class SlotAnswer:
    """One generate answer as received, before any check."""

    blob: bytes  # the response body (safetensors)
    sha256: str  # the X-Blob-SHA256 header
    model_version: str  # the X-Model-Version header
    signature: str = ""  # the X-Blob-Signature header (base64 Ed25519), when the service signs


class ServiceClient:
    """HTTP calls to the generation service, with the API key; failures raise ServiceError."""

    def __init__(self, url: str, api_key: str, timeout: float = 30.0, ca_file: str = "", pinned_key: str = ""):
        """`ca_file`: the CA certificate (PEM) that signed an https:// service's certificate (else the system's).
        `pinned_key`: the signing public key (base64 DER, as `cli.py keys signing-key` prints it) every manifest
        must carry; "" trusts the manifest's own `signing` (or none)."""
        import httpx

        from toolkit.protocol.tls import tls_context

        self.pinned_key = pinned_key
        self._http = httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"},
                                  timeout=timeout, verify=tls_context(ca_file))

    def __enter__(self) -> "ServiceClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs):
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise ServiceError(f"{method} {path}: no answer from the service ({err})") from err
        _raise_for_error(response, method, path)
        return response

    def manifest(self) -> dict[str, Any]:
        """The service's manifest, checked against the manifest schema."""
        from toolkit.protocol.manifest import validate_manifest

        response = self._call("GET", routes.MANIFEST)
        try:
            manifest = response.json()
        except ValueError as err:
            raise ManifestError(f"the service's manifest is not JSON ({err})") from err
        if not isinstance(manifest, dict):
            raise ManifestError("the service's manifest is not a JSON object")
        validate_manifest(manifest, "service manifest")
        check_pinned_key(manifest, self.pinned_key)
        return manifest

    def download(self, manifest: Mapping[str, Any], target: str, dest_dir: Path) -> Path:
        """The target's file in dest_dir, its sha256 checked against the manifest; an interrupted download resumes.

        A file already there with the right digest is not fetched again. A download that ends with the wrong
        digest, or that runs past the manifest's `bytes`, is deleted and raises ManifestError (nothing more is read).
        """
        import httpx

        from toolkit.artifacts import sha256_file

        if target not in manifest["targets"]:
            raise ManifestError(f"the manifest has no target {target!r}; it has {', '.join(manifest['targets'])}")
        info = manifest["targets"][target]
        from toolkit.protocol.manifest import plain_file_name

        if not plain_file_name(info.get("file")):
            raise ManifestError(f"{target}: the manifest's file name {str(info.get('file'))[:80]!r} is not a plain "
                                f"file name; nothing was written")
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        final = dest_dir / (info["file"] + (".zip" if info.get("served_as") == "zip" else ""))
        if final.exists() and sha256_file(final) == info["sha256"]:
            return final
        partial = final.with_name(final.name + ".partial")
        have = partial.stat().st_size if partial.exists() else 0
        if have >= info["bytes"]:
            partial.unlink()
            have = 0
        headers = {"Range": f"bytes={have}-", "If-Range": f'"{info["sha256"]}"'} if have else {}
        path = routes.artifact(target)
        try:
            with self._http.stream("GET", path, headers=headers) as response:
                if response.status_code not in (200, 206):
                    response.read()
                    _raise_for_error(response, "GET", path)
                served = response.headers.get("x-artifact-sha256")
                if served and served != info["sha256"]:
                    raise ManifestError(f"the service sends {target} with sha256 {served}, but the manifest held "
                                        f"says {info['sha256']}: fetch the manifest again")
                size = have if response.status_code == 206 else 0
                with partial.open("ab" if response.status_code == 206 else "wb") as handle:
                    for chunk in response.iter_bytes(CHUNK):
                        size += len(chunk)
                        if size > info["bytes"]:
                            break
                        handle.write(chunk)
                if size > info["bytes"]:
                    partial.unlink()
                    raise ManifestError(f"{target}: the service sent more than the manifest's {info['bytes']} "
                                        f"bytes; the download was stopped and deleted")
        except httpx.HTTPError as err:  # the partial file stays for the next attempt to resume
            raise ServiceError(f"GET {path}: download interrupted after {partial.stat().st_size if partial.exists() else 0}"
                               f" bytes ({err})") from err
        digest = sha256_file(partial)
        if digest != info["sha256"]:
            partial.unlink()
            raise ManifestError(f"{target}: the downloaded file has sha256 {digest}, the manifest says "
                                f"{info['sha256']}; the download was deleted")
        partial.replace(final)
        return final

    def generate(self, body: Mapping[str, Any], dtype: str = "float32", binary: bool = False) -> SlotAnswer:
        """POST the device's samples, as JSON or (`binary`) in the compact safetensors form of `toolkit.protocol.wire`;
        the raw answer (check it with `check_answer`)."""
        from toolkit.protocol.wire import MEDIA_TYPE, encode_request

        sent = ({"content": encode_request(body), "headers": {"Content-Type": MEDIA_TYPE}} if binary
                else {"json": dict(body)})
        return _slot_answer(self._call("POST", routes.GENERATE, params={"dtype": dtype}, **sent))

    def base_slots(self, dtype: str = "float32") -> SlotAnswer:
        """Base's slots, the device's fallback before or instead of generated ones (check with `check_answer`)."""
        return _slot_answer(self._call("GET", routes.BASE_SLOTS, params={"dtype": dtype}))


def _slot_answer(response) -> SlotAnswer:
    return SlotAnswer(response.content, response.headers.get("x-blob-sha256", ""),
                      response.headers.get("x-model-version", ""), response.headers.get("x-blob-signature", ""))


def _raise_for_error(response, method: str, path: str) -> None:
    if response.status_code < 400:
        return
    try:
        payload = response.json()
        code, message = str(payload["error"]), str(payload["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.text[:200]
    retry = response.headers.get("retry-after")
    raise ServiceError(f"{method} {path}: {response.status_code} {code}: {message}", response.status_code, code,
                       float(retry) if retry and retry.isdigit() else None)


def check_pinned_key(manifest: Mapping[str, Any], pinned_key: str) -> None:
    """ManifestError when the client pins a signing key (`pinned_key` not "") and the manifest names another
    key or none: a manifest cannot replace the key a client was built to trust."""
    if not pinned_key:
        return
    found = manifest.get("signing", {}).get("public_key") if isinstance(manifest.get("signing"), dict) else None
    if found != pinned_key:
        said = f"names the signing key {found[:12]}..." if found else "carries no signing key"
        raise ManifestError(f"the manifest {said}, but this client is pinned to {pinned_key[:12]}...: refused "
                            f"(a manifest from elsewhere, or the service's key changed: update the pinned key)")


def blob_metadata(blob: bytes) -> dict[str, str]:
    """The `__metadata__` of a slot blob that `decode_safetensors` accepted ({} when it has none)."""
    (size,) = struct.unpack_from("<Q", blob)
    metadata = json.loads(bytes(blob[8:8 + size])).get("__metadata__") or {}
    return dict(metadata)


def check_metadata(metadata: Mapping[str, str], manifest: Mapping[str, Any]) -> None:
    """BlobError when the blob's own metadata (covered by its signature, unlike the X-Model-Version header) names
    another model version or task than the manifest, or, under a signing manifest, names no model version."""
    version = metadata.get("model_version")
    if version is None and "signing" in manifest:
        raise BlobError("signed slot blob names no model version in its __metadata__: its signature binds no "
                        "model version, refused")
    if version is not None and version != manifest["model_version"]:
        raise BlobError(f"slot blob's __metadata__ names model version {version[:40]}, the manifest "
                        f"{manifest['model_version']}: a blob made for another run (its X-Model-Version header "
                        f"rewritten on the way?), refused")
    task = metadata.get("task")
    if task is not None and task != manifest["task"]:
        raise BlobError(f"slot blob's __metadata__ names task {task[:40]}, the manifest {manifest['task']}: refused")


def check_answer(answer: SlotAnswer, manifest: Mapping[str, Any], pinned_key: str = "") -> dict[str, np.ndarray]:
    """The answer's slots as fp32 arrays, after checking, in this order: its digest; the manifest against a pinned
    signing key; its signature when the manifest carries a signing key; its X-Model-Version header; every slot's
    name, shape and dtype against the manifest; the blob's own metadata (model version, task); every value against
    the slot's bound (BlobError, ManifestError, SlotShapeError)."""
    from toolkit.protocol.manifest import slot_specs_of
    from toolkit.protocol.slots import decode_safetensors

    digest = hashlib.sha256(answer.blob).hexdigest()
    if answer.sha256 != digest:
        raise BlobError(f"slot blob has sha256 {digest}, the service announced {answer.sha256 or 'none'}: "
                        f"corrupted in transit")
    check_pinned_key(manifest, pinned_key)
    if "signing" in manifest:
        from toolkit.protocol.signing import verify

        if not answer.signature:
            raise BlobError("slot blob is not signed, but the manifest carries a signing key")
        verify(manifest["signing"]["public_key"], answer.blob, answer.signature)
    if answer.model_version != manifest["model_version"]:
        raise ManifestError(f"slots come from model version {answer.model_version or 'unknown'}, the device's "
                            f"program from {manifest['model_version']}: fetch the manifest and the program again")
    slots = decode_safetensors(answer.blob, slot_specs_of(manifest))
    check_metadata(blob_metadata(answer.blob), manifest)
    check_bounds(slots, manifest)
    return slots


def check_bounds(slots: Mapping[str, np.ndarray], manifest: Mapping[str, Any]) -> None:
    """BlobError when a slot holds a |value| beyond the `max_abs` its manifest entry records (if it records one)."""
    for entry in manifest["slots"]:
        bound = entry.get("max_abs")
        if bound is not None and slots[entry["name"]].size:
            largest = float(np.abs(slots[entry["name"]]).max())
            if largest > bound:
                raise BlobError(f"slot {entry['name']!r} holds |value| {largest:.6g}, beyond its bound {bound:.6g} "
                                f"(manifest max_abs): refused as poisoned")


@dataclass(frozen=True)
class ManifestModel:
    """The device model as the manifest describes it: what an exporter's runner needs, without PyTorch."""

    input_specs: list  # TensorSpec of each program input, in call order
    slot_specs: list  # SlotSpec of each slot, in call order after the inputs
    output_spec: Any  # TensorSpec of the output

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> "ManifestModel":
        from toolkit.protocol.slots import TensorSpec
        from toolkit.protocol.manifest import slot_specs_of

        def tensor(t: Mapping[str, Any]) -> TensorSpec:
            return TensorSpec(t["name"], tuple(t["shape"]), t["dtype"], t.get("description", ""))

        return cls([tensor(t) for t in manifest["inputs"]], slot_specs_of(manifest), tensor(manifest["output"]))


def load_program(manifest: Mapping[str, Any], target: str, path: Path, threads: int = 1):
    """The downloaded program in its runtime (the exporter's own runner): runner(inputs, slots) -> output."""
    from toolkit.exporting.targets import exporter
    from toolkit.exporting.contract import Artifact, ExportOptions

    info = manifest["targets"][target]
    path = Path(path)
    if info.get("served_as") == "zip":
        path = _unzip(path, path.parent)
    artifact = Artifact(target, path, info["runtime"], info["quantization"], tuple(info.get("input_names", ())),
                        info.get("output_name", manifest["output"]["name"]), info.get("served_as", "file"))
    return exporter(target).load(artifact, ManifestModel.of(manifest), ExportOptions(threads=threads))


def _unzip(archive: Path, dest: Path) -> Path:
    """Extract a served package (e.g. model.mlpackage.zip); entries may not leave dest."""
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
        root = dest.resolve()
        for name in names:
            if not (root / name).resolve().is_relative_to(root):
                raise BlobError(f"{archive}: entry {name!r} would be written outside {dest}")
        zipped.extractall(dest)
    return dest / names[0].split("/")[0]


class DeviceClient:
    """One device: the manifest, its program loaded in the runtime, Base's slots and its last good slots.

    The fallback rule (the apps' cores follow it too): on any failure to get or check new slots the current
    slots stay: the last good generated ones, or Base's when none were ever installed; `last_refusal` says why.
    """

    def __init__(self, service: ServiceClient, target: str, workdir: Path, threads: int = 1):
        self.service, self.target, self.workdir, self.threads = service, target, Path(workdir), threads
        self.manifest: dict[str, Any] | None = None
        self.program = None
        self.base_slots: dict[str, np.ndarray] | None = None  # Base's slots, checked like any answer
        self.slots: dict[str, np.ndarray] | None = None  # the slots in use: the last that passed every check
        self.last_refusal: str | None = None  # why the last refresh or install left the slots as they were

    def setup(self) -> Path:
        """Fetch the manifest, Base's slots (now the current ones) and the program file, load it in its runtime;
        returns the file's path."""
        self.manifest = self.service.manifest()
        try:
            self.base_slots = check_answer(self.service.base_slots(), self.manifest, self.service.pinned_key)
        except ServiceError as err:
            if err.status != 404:
                raise
            logger.warning("the service has no Base slots (an older service): no slots until refresh() succeeds")
        self.slots = self.base_slots
        path = self.service.download(self.manifest, self.target, self.workdir)
        self.program = load_program(self.manifest, self.target, path, self.threads)
        return path

    def refresh(self, body: Mapping[str, Any], dtype: str = "float32") -> dict[str, np.ndarray]:
        """Ask for slots generated from `body`; on any failure the previous slots stay and the error is raised."""
        try:
            answer = self.service.generate(body, dtype)
        except ServiceError as err:
            self._refused(err)
            raise
        return self.install(answer)

    def install(self, answer: SlotAnswer) -> dict[str, np.ndarray]:
        """Check a generate answer and make its slots current; a refused answer leaves the current slots."""
        if self.manifest is None:
            raise ManifestError("no manifest yet: call setup() first")
        try:
            slots = check_answer(answer, self.manifest, self.service.pinned_key)
        except (BlobError, ManifestError, SlotShapeError) as err:
            self._refused(err)
            raise
        self.slots, self.last_refusal = slots, None
        return slots

    def _refused(self, err: Exception) -> None:
        self.last_refusal = f"{type(err).__name__}: {err}"
        kept = "Base's slots" if self.slots is self.base_slots else "the last good slots"
        logger.warning("slots refused, keeping %s: %s", kept, err)

    def score(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """One program call with the current slots (inputs in the manifest's order, shapes and dtypes)."""
        if self.program is None:
            raise ManifestError("no program loaded: call setup() first")
        if self.slots is None:
            raise SlotShapeError("no slots yet: call setup() first")
        return self.program(list(inputs), self.slots)
