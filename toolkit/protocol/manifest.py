"""manifest.json: the one description of an export's programs and slots, validated against its JSON Schema."""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from toolkit import __version__
from toolkit.artifacts import read_small_file, strict_json, write_json
from toolkit.errors import ManifestError, one_line
from toolkit.protocol.slots import ProgramSpecs, SlotSpec, blob_layout

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
SCHEMA_PATH = Path(__file__).parent / "schemas" / "manifest.schema.json"
PLAIN_FILE_NAME = re.compile(r"[A-Za-z0-9_.-]+")  # the schema's pattern for a target's file
SLOT_SCOPE = "static layers only; slots are float32 program inputs"


@lru_cache(maxsize=1)
def manifest_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def validate_manifest(manifest: Mapping[str, Any], source: str = "manifest") -> None:
    """Raise ManifestError naming the first violation of the schema or of the slot layout."""
    import jsonschema

    _check_finite(manifest, source)
    validator = jsonschema.Draft202012Validator(manifest_schema())
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise ManifestError(f"{source}: {where}: {first.message}")
    offset = 0
    for slot in manifest["slots"]:
        expected = 4 * _numel(slot["shape"])
        if slot["offset"] != offset or slot["nbytes"] != expected:
            raise ManifestError(f"{source}: slot {slot['name']!r} should sit at byte {offset} with {expected} bytes, "
                                f"found offset {slot['offset']} and {slot['nbytes']} bytes")
        offset += expected
    if manifest["slot_blob"]["nbytes"] != offset:
        raise ManifestError(f"{source}: slot_blob.nbytes is {manifest['slot_blob']['nbytes']}, slots add up to {offset}")
    names = [t["name"] for t in manifest["inputs"]] + [s["name"] for s in manifest["slots"]]
    if manifest["call_signature"] != names:
        raise ManifestError(f"{source}: call_signature {manifest['call_signature']} should be inputs then slots {names}")
    for target, info in manifest["targets"].items():
        if not plain_file_name(info["file"]):
            raise ManifestError(f"{source}: targets/{target}/file {info['file']!r} is not a file name")
        if "input_names" in info and len(info["input_names"]) != len(names):
            raise ManifestError(f"{source}: targets/{target}/input_names has {len(info['input_names'])} names for "
                                f"the {len(names)} arguments of call_signature")


def _check_finite(manifest: Any, source: str) -> None:
    """ManifestError at the first number that is NaN or infinite: the schema's "number" admits them, every client's
    bound check (`max_abs`) would then compare with NaN, and JSON has no such literal to serve."""
    stack = [("", manifest)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            raise ManifestError(f"{source}: {where or '(top level)'}: {node} is not a finite number")
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        stack.extend((f"{where}/{key}" if where else str(key), child) for key, child in children)


def plain_file_name(name) -> bool:
    """A target's file as the schema allows it (letters, digits, _ . -) and neither "." nor "..": never a path."""
    return isinstance(name, str) and PLAIN_FILE_NAME.fullmatch(name) is not None and name not in (".", "..")


def _numel(shape: list[int]) -> int:
    n = 1
    for x in shape:
        n *= int(x)
    return n


def slot_specs_of(manifest: Mapping[str, Any]) -> list[SlotSpec]:
    return [SlotSpec(s["name"], tuple(s["shape"]), s["dtype"]) for s in manifest["slots"]]


def model_version(*weight_files: Path) -> str:
    """A short hash of the run's weights: changes whenever the served model changes."""
    digest = hashlib.sha256()
    for path in weight_files:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def build_manifest(device_model: ProgramSpecs, *, task: str, run_name: str, run_config_sha256: str, version: str,
                   quantization: Mapping[str, Any], targets: Mapping[str, Mapping[str, Any]],
                   request_schema: Mapping[str, Any] | None = None,
                   slot_bounds: Mapping[str, float] | None = None) -> dict[str, Any]:
    slots = [{**slot, "max_abs": float(slot_bounds[slot["name"]])} if slot_bounds else slot
             for slot in blob_layout(device_model.slot_specs)]
    manifest = {
        "format_version": FORMAT_VERSION,
        "toolkit_version": __version__,
        "task": task,
        "run": {"name": run_name, "config_sha256": run_config_sha256},
        "model_version": version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": [t.to_json() for t in device_model.input_specs],
        "output": device_model.output_spec.to_json(),
        "slots": slots,
        "slot_blob": {"byte_order": "little", "dtype": "float32", "nbytes": sum(s["nbytes"] for s in slots)},
        "call_signature": [t.name for t in device_model.input_specs] + [s.name for s in device_model.slot_specs],
        "quantization": dict(quantization),
        "targets": {name: dict(info) for name, info in targets.items()},
    }
    if request_schema is not None:
        manifest["generate"] = {"request_schema": dict(request_schema)}
    validate_manifest(manifest, "new manifest")
    return manifest


def write_manifest(directory: Path, manifest: Mapping[str, Any]) -> Path:
    """Validate, then write atomically (a failed write leaves any previous manifest intact)."""
    validate_manifest(manifest, "manifest to write")
    path = Path(directory) / MANIFEST_FILE
    return write_json(path, manifest)


def load_manifest(path: Path) -> dict[str, Any]:
    """Read and validate a manifest file (or the manifest.json inside an export directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_FILE
    try:
        manifest = strict_json(read_small_file(path))
    except FileNotFoundError as err:
        raise ManifestError(f"{path}: no manifest here (run `cli.py export` first)") from err
    except (OSError, ValueError) as err:  # ValueError: not UTF-8, not JSON, NaN or Infinity
        raise ManifestError(f"{path}: not readable JSON ({one_line(err, 160)})") from err
    except RecursionError as err:
        raise ManifestError(f"{path}: not a manifest (JSON nested too deeply to read)") from err
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path}: a manifest is a JSON object")
    validate_manifest(manifest, str(path))
    return manifest
