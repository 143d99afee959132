"""Export a run's device model (or a personalised model without a run) to the requested targets, validate each in
its runtime, write the manifest and report.json: one transaction that leaves a previous export intact on failure."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from torch import nn

from toolkit.artifacts import work_dir_beside
from toolkit.errors import ConfigError
from toolkit.exporting.measure import (EvalSet, Progress, build_eval_set, export_shape, latency, parity_devices, score,
                                    torch_threads)
from toolkit.exporting.program import DeviceProgram, ExampleInput
from toolkit.training.serving import ServingPrograms, bounds_from_largest

logger = logging.getLogger(__name__)

REPORT_FILE = "report.json"


def export_target(name: str, model, eval_set: EvalSet, slot_sets: Mapping[str, Mapping[str, np.ndarray]],
                  options, work_dir: Path, task=None, reference_metrics: Mapping[str, float] | None = None,
                  progress: Progress | None = None) -> tuple[Any, dict]:
    """Export one target, validate parity, time it, and (with a task) score the test calls in its runtime against
    PyTorch's. Returns (artifact, report)."""
    from toolkit.artifacts import served_digest
    from toolkit.exporting.targets import exporter

    module = exporter(name)
    started = time.perf_counter()
    artifact = module.export(model, options, work_dir)
    exported = time.perf_counter()
    parity = module.validate(artifact, model, slot_sets, options)
    runner = module.load(artifact, model, options)
    report = {"runtime": artifact.runtime, "quantization": artifact.quantization, "parity": parity.to_json()}
    if task is not None:
        report.update(_scored(name, runner, task, eval_set, reference_metrics, progress))
    scored = time.perf_counter()
    timing = latency(runner, model, eval_set, options.latency_calls)
    size, sha256 = served_digest(artifact.path)
    report = {"file": artifact.path.name, "bytes": size, "sha256": sha256, **report, "latency": timing,
              "seconds": {"export": exported - started, "validate_and_score": scored - exported,
                          "latency": time.perf_counter() - scored}}
    logger.info("%s: %d bytes, p50 %s us (eager %.0f us)", name, size, timing["runtime_p50_us"],
                timing["pytorch_eager_p50_us"])
    return artifact, report


def _scored(name: str, runner, task, eval_set: EvalSet, reference_metrics: Mapping[str, float],
            progress: Progress | None) -> dict:
    """The task's metric over every test call in the runtime; AccuracyDropError past the allowed drop."""
    from toolkit.exporting.contract import MAX_METRIC_DROP, AccuracyDropError

    advance = progress(f"{name}: scoring test calls", len(eval_set.calls)) if progress else (lambda: None)
    outputs = {}
    for device, device_calls in eval_set.calls.items():
        outputs[device] = runner.call_many([inputs for inputs, _ in device_calls], eval_set.slots[device])
        advance()
    metrics = score(task, eval_set, outputs)
    max_diff = max(float(np.abs(o - r).max()) for d in outputs for o, r in zip(outputs[d], eval_set.reference[d]))
    metric = task.selection_metric
    drop = reference_metrics[metric] - metrics[metric]
    if not drop <= MAX_METRIC_DROP:
        raise AccuracyDropError(name, metric, metrics[metric], reference_metrics[metric], MAX_METRIC_DROP)
    return {"test_calls": eval_set.n_calls, "test_devices": len(eval_set.calls),
            metric: {"runtime": metrics[metric], "pytorch_fp32": reference_metrics[metric], "drop": drop,
                     "allowed_drop": MAX_METRIC_DROP},
            "metrics_runtime": metrics, "max_abs_diff_vs_pytorch_fp32": max_diff}


def export_run(run, targets: Sequence[str], options, out_dir: Path, progress: Progress | None = None) -> dict:
    """Write out_dir/{model.pte, model.tflite, model.mlpackage, manifest.json, report.json} for `targets` from a
    trained run: parity on generated slot sets, the task's metric over every test call in each runtime.

    Everything is written to a temporary directory beside out_dir and moved in only once every target validated,
    so a failed export leaves a previous one intact. Returns the report.
    """
    from toolkit.exporting.contract import MIN_SLOT_SETS
    from toolkit.protocol.manifest import model_version
    from toolkit.training.runs import BASE_WEIGHTS, CONFIG_FILE, DUET_WEIGHTS

    targets = _checked_targets(targets, Path(out_dir))
    started = time.perf_counter()
    shape = export_shape(run.task, options)
    model = DeviceProgram.of(run.task, run.duet, shape).eval()
    metric = run.task.selection_metric
    with torch_threads(options.threads):
        programs = ServingPrograms(run)  # traced once: the eval set's slots and the manifest's slot bounds
        eval_set = build_eval_set(run, programs, model, shape, options.max_eval_devices, progress)
        reference_metrics = score(run.task, eval_set, eval_set.reference)
        devices = parity_devices(np.array(sorted(eval_set.calls)), MIN_SLOT_SETS)
        slot_sets = {f"device-{d}": eval_set.slots[d] for d in devices}

        def export_one(name: str, work: Path) -> tuple[Any, dict, dict]:
            artifact, report = export_target(name, model, eval_set, slot_sets, options, work, run.task,
                                             reference_metrics, progress)
            return artifact, report, {"parity": report["parity"], metric: report[metric]}

        described = Described(
            task=run.task.name, name=run.name,
            config_sha256=hashlib.sha256((run.path / CONFIG_FILE).read_bytes()).hexdigest(),
            version=model_version(run.path / BASE_WEIGHTS, run.path / DUET_WEIGHTS),
            request_schema=run.task.request_schema(), slot_bounds=programs.slot_bounds(),
            report={"run": str(run.path), "metric": metric, "shape": shape, "pytorch_fp32": reference_metrics})
        return _transaction(model, targets, options, Path(out_dir), export_one, described, started)


def export_model(model: nn.Module, inputs: Sequence[ExampleInput], targets: Sequence[str], options,
                 out_dir: Path, name: str = "model", progress: Progress | None = None) -> dict:
    """Export a personalised model the toolkit never trained (no task, no data, no generator): its slots are program
    inputs and Base's values are its own parameters. Parity is checked with Base's slots and perturbed copies of
    them on random inputs (`inputs`: each input's spec and value range); the manifest has no `generate` section:
    no service writes this model's slots, devices run Base's. Returns the report."""
    from toolkit.exporting.contract import MIN_SLOT_SETS
    from toolkit.model.slots import base_slot_values
    from toolkit.protocol.slots import pack_flat

    targets = _checked_targets(targets, Path(out_dir))
    started = time.perf_counter()
    program = DeviceProgram.from_specs(model, inputs)
    base = base_slot_values(model)
    rng = np.random.default_rng(0)
    slot_sets = {"base": base}
    for i in range(1, MIN_SLOT_SETS):
        slot_sets[f"base-perturbed-{i}"] = {k: (v * (1 + 0.1 * rng.standard_normal(v.shape))).astype(np.float32)
                                            for k, v in base.items()}
    first_call = tuple(t.numpy() for t in program.example_inputs(0))
    eval_set = EvalSet({0: [(first_call, None)]}, {0: base}, {})  # what latency() times
    with torch_threads(options.threads):
        def export_one(target: str, work: Path) -> tuple[Any, dict, dict]:
            artifact, report = export_target(target, program, eval_set, slot_sets, options, work, progress=progress)
            return artifact, report, {"parity": report["parity"]}

        described = Described(
            task=f"model:{name}", name=name, config_sha256=hashlib.sha256(json.dumps(
                [example.spec.to_json() for example in inputs], sort_keys=True).encode()).hexdigest(),
            version=hashlib.sha256(pack_flat(program.slot_specs, base)
                                   + _weights_bytes(model)).hexdigest()[:16],
            request_schema=None,
            slot_bounds=bounds_from_largest({k: float(np.abs(v).max()) for k, v in base.items()}),
            report={"model": name, "shape": {}, "base_slots_only": True})
        return _transaction(program, targets, options, Path(out_dir), export_one, described, started)


def _weights_bytes(model: nn.Module) -> bytes:
    return b"".join(t.detach().cpu().contiguous().numpy().tobytes() for t in model.state_dict().values())


@dataclass
class Described:
    """What the manifest and report.json say of where the exported model came from."""

    task: str  # the task's name, or "model:<name>" for a model exported without one
    name: str  # the run's name, or the model's
    config_sha256: str  # of the run's config.json (or of the model export's input specs)
    version: str  # model_version: a hash of the weights
    request_schema: Mapping[str, Any] | None  # the generate request's schema; None: no generator serves this model
    slot_bounds: Mapping[str, float]  # each slot's max_abs
    report: dict  # what report.json records besides the targets


def _checked_targets(targets: Sequence[str], out_dir: Path) -> list[str]:
    from toolkit.exporting.targets import exporter

    targets = list(dict.fromkeys(targets))
    if not targets:
        raise ConfigError("choose at least one export target")
    for name in targets:
        exporter(name)  # unknown names fail before any work
    _check_replaceable(out_dir)
    return targets


def _transaction(model, targets: list[str], options, out_dir: Path, export_one, described: Described,
                 started: float) -> dict:
    """Export every target into a work directory beside out_dir, write the manifest and report.json there, and move
    it into place only when everything validated (a failure leaves a previous export intact)."""
    from toolkit.protocol.manifest import SLOT_SCOPE, build_manifest, load_manifest, write_manifest

    try:
        work = work_dir_beside(out_dir)
    except OSError as err:
        raise ConfigError(f"{out_dir}: cannot write beside it ({err.strerror or err})") from err
    try:
        entries, reports = {}, {}
        for name in targets:
            artifact, reports[name], validation = export_one(name, work)
            entries[name] = artifact.manifest_entry(reports[name]["bytes"], reports[name]["sha256"], validation)
        manifest = build_manifest(
            model, task=described.task, run_name=described.name, run_config_sha256=described.config_sha256,
            version=described.version,
            quantization={"mode": options.quantize, "scope": SLOT_SCOPE, "options": options.to_json()},
            targets=entries, request_schema=described.request_schema, slot_bounds=described.slot_bounds)
        write_manifest(work, manifest)
        load_manifest(work)  # what the service will read back
        report = {**described.report, "targets": reports, "options": options.to_json(),
                  "seconds_total": time.perf_counter() - started}
        (work / REPORT_FILE).write_text(json.dumps(report, indent=2))
        _move_into_place(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report


def _check_replaceable(out_dir: Path) -> None:
    """Only an empty directory or a previous export may be replaced."""
    from toolkit.protocol.manifest import MANIFEST_FILE

    if out_dir.exists() and (not out_dir.is_dir() or (not (out_dir / MANIFEST_FILE).exists() and any(out_dir.iterdir()))):
        raise ConfigError(f"{out_dir} exists and is not an export directory (no {MANIFEST_FILE}); choose another --out")


def _move_into_place(work: Path, out_dir: Path) -> None:
    """Replace out_dir by the validated work directory (the old one is kept until the new one is in place)."""
    _check_replaceable(out_dir)
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{time.time_ns()}")
        out_dir.rename(old)
    work.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
