"""What one service process loads once: the run, its export and their checks, keys, metrics and the batcher."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.data.cache import cache_dir
from toolkit.errors import ConfigError, ManifestError, RequestError, one_line
from toolkit.service.auth import KeyStore
from toolkit.service.batching import MicroBatcher
from toolkit.service.config import ServiceConfig
from toolkit.service.downloads import ServedArtifact, load_artifacts
from toolkit.service.openapi import synthetic_examples
from toolkit.service.prometheus import ServiceMetrics
from toolkit.service.slot_maker import GenerateJob, SchemaChecker, SlotBlob, SlotMaker


@dataclass
class ServiceState:
    """What the handlers read; loaded once per process."""

    config: ServiceConfig
    run: Any  # toolkit.training.runs.Run
    manifest: dict[str, Any]
    manifest_bytes: bytes  # the manifest as served
    manifest_etag: str
    model_version: str
    artifacts: dict[str, ServedArtifact]
    keys: KeyStore
    checker: SchemaChecker
    examples: list[dict]  # example generate bodies of test devices, published in the OpenAPI document
    static_blob: SlotBlob | None  # the benchmark's fixed answer (static_floor only)
    base_blobs: dict[str, SlotBlob]  # Base's slots per dtype: a device's fallback (GET /v1/slots/base)
    metrics: ServiceMetrics
    batcher: MicroBatcher


def load_state(config: ServiceConfig) -> ServiceState:
    """Load the run, the manifest and the artifacts, and check that they belong together (DuetError if not)."""
    import torch

    from toolkit.training.serving import ServingPrograms
    from toolkit.protocol.manifest import load_manifest, slot_specs_of
    from toolkit.training.runs import load_run

    torch.set_num_threads(config.torch_threads)
    keys = KeyStore.from_file(config.api_keys)
    run = load_run(config.run_dir, cache_dir(config.cache_dir))
    manifest = load_manifest(Path(config.exports_dir))
    check_compatible(run, manifest, config)
    artifacts = load_artifacts(Path(config.exports_dir), manifest)
    checker = SchemaChecker(run.task.request_schema())
    programs = ServingPrograms(run)
    programs.pipeline  # traced now, not on the first request
    signing_key = None
    if config.signing_key:
        from toolkit.protocol.signing import ALGORITHM, load_signing_key, public_key_text

        signing_key = load_signing_key(config.signing_key)
        manifest = {**manifest, "signing": {"algorithm": ALGORITHM, "public_key": public_key_text(signing_key)}}
    maker = SlotMaker(run, programs, slot_specs_of(manifest), manifest["model_version"], signing_key)
    templates = [run.task.example_request(int(d)) for d in run.task.devices("test")[: max(config.examples, 1)]]
    for body in templates:  # the task's own bodies must pass the service's checks
        checker.check(body)
    warm_up = _warm_up(maker, templates, config)
    examples = synthetic_examples(templates, config.examples, lambda body: _acceptable(run.task, checker, body))
    static_blob = warm_up if config.static_floor else None  # the benchmark's floor: a blob of generate's size
    metrics = ServiceMetrics(manifest["model_version"], run.task.name)

    def observe(size: int, seconds: float) -> None:
        metrics.batch_size.observe(size)
        metrics.forward.observe(seconds)

    async def process(jobs: list[GenerateJob]) -> list:
        import torch

        with torch.inference_mode():  # ~10 us per request cheaper than the no_grad inside
            return maker(jobs)

    batcher = MicroBatcher(process, window_s=config.batch_window_ms / 1000.0, max_batch=config.max_batch,
                           capacity=config.queue_size, enabled=config.batching, on_batch=observe)
    manifest_bytes = json.dumps(manifest, indent=2).encode()
    return ServiceState(config, run, manifest, manifest_bytes, f'"{hashlib.sha256(manifest_bytes).hexdigest()}"',
                        manifest["model_version"], artifacts, keys, checker, examples,
                        static_blob, maker.base_blobs(), metrics, batcher)


def _warm_up(maker: SlotMaker, bodies: list[dict], config: ServiceConfig) -> SlotBlob:
    """One generation from a test device's body before the port opens: a run whose generator cannot serve (e.g.
    NaN slots from a damaged config or weights) stops start-up instead of answering every generate with a 500."""
    if not bodies:
        raise ConfigError(f"{config.run_dir}: the run has no test device whose body could warm the generator up")
    blob = maker([GenerateJob(bodies[0], "float32")])[0]
    if isinstance(blob, Exception):
        raise ConfigError(f"{config.run_dir}: generating a test device's slots failed ({one_line(blob)}); the run "
                          f"cannot be served (are its config.json and weights intact?)")
    return blob


def _acceptable(task, checker: SchemaChecker, body: dict) -> bool:
    """Whether a generate body passes the service's checks (the schema's and the task's)."""
    try:
        checker.check(body)
        task.request_inputs([body])
    except RequestError:
        return False
    return True


def check_compatible(run, manifest: dict, config: ServiceConfig) -> None:
    """The export must come from this run: same task, same weights (model_version), same config.json
    (config_sha256: the settings the weights are read with), same slots (names, shapes)."""
    from toolkit.protocol.manifest import model_version
    from toolkit.training.runs import BASE_WEIGHTS, CONFIG_FILE, DUET_WEIGHTS

    if manifest["task"] != run.task.name:
        raise ManifestError(f"{config.exports_dir} exports a {manifest['task']!r} model, but {config.run_dir} is a "
                            f"{run.task.name!r} run")
    from toolkit.model.slots import slot_specs

    expected = [(s.name, list(s.shape)) for s in slot_specs(run.duet)]
    found = [(s["name"], list(s["shape"])) for s in manifest["slots"]]
    if expected != found:
        raise ManifestError(f"{config.exports_dir}: manifest slots {found} differ from the run's slots {expected}; "
                            f"export this run again")
    config_sha256 = hashlib.sha256((run.path / CONFIG_FILE).read_bytes()).hexdigest()
    if manifest["run"]["config_sha256"] != config_sha256:
        raise ManifestError(f"{config.exports_dir} was exported from another {CONFIG_FILE} than {config.run_dir}'s "
                            f"(sha256 {manifest['run']['config_sha256'][:12]}... vs {config_sha256[:12]}...); export "
                            f"this run again")
    version = model_version(run.path / BASE_WEIGHTS, run.path / DUET_WEIGHTS)
    if manifest["model_version"] != version:
        raise ManifestError(f"{config.exports_dir} was exported from weights {manifest['model_version']}, but "
                            f"{config.run_dir} holds weights {version}; export this run again")
