"""Export a run's device model to the requested targets, validate each in its runtime, write manifest and report."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from toolkit.artifacts import work_dir_beside
from toolkit.errors import ConfigError
from toolkit.serving import ServingPrograms
from toolkit.measure import (EvalSet, Progress, build_eval_set, export_shape, latency, parity_devices, score,
                             torch_threads)

logger = logging.getLogger(__name__)

REPORT_FILE = "report.json"


def export_target(name: str, run, model, eval_set: EvalSet, slot_sets: Mapping[str, Mapping[str, np.ndarray]],
                  options, work_dir: Path, reference_metrics: Mapping[str, float],
                  progress: Progress | None) -> tuple[Any, dict]:
    """Export one target, validate parity, score the test calls in its runtime, time it. Returns (artifact, report)."""
    from exporters import exporter
    from exporters.base import MAX_METRIC_DROP, AccuracyDropError

    module = exporter(name)
    started = time.perf_counter()
    artifact = module.export(model, options, work_dir)
    exported = time.perf_counter()
    parity = module.validate(artifact, model, slot_sets, options)
    runner = module.load(artifact, model, options)
    advance = progress(f"{name}: scoring test calls", len(eval_set.calls)) if progress else (lambda: None)
    outputs = {}
    for device, device_calls in eval_set.calls.items():
        outputs[device] = runner.call_many([inputs for inputs, _ in device_calls], eval_set.slots[device])
        advance()
    metrics = score(run.task, eval_set, outputs)
    max_diff = max(float(np.abs(o - r).max()) for d in outputs for o, r in zip(outputs[d], eval_set.reference[d]))
    metric = run.task.selection_metric
    drop = reference_metrics[metric] - metrics[metric]
    if not drop <= MAX_METRIC_DROP:
        raise AccuracyDropError(name, metric, metrics[metric], reference_metrics[metric], MAX_METRIC_DROP)
    scored = time.perf_counter()
    timing = latency(runner, model, eval_set, options.latency_calls)
    from toolkit.artifacts import served_digest

    size, sha256 = served_digest(artifact.path)
    report = {
        "file": artifact.path.name, "bytes": size, "sha256": sha256, "runtime": artifact.runtime,
        "quantization": artifact.quantization, "parity": parity.to_json(),
        "test_calls": eval_set.n_calls, "test_devices": len(eval_set.calls),
        metric: {"runtime": metrics[metric], "pytorch_fp32": reference_metrics[metric], "drop": drop,
                 "allowed_drop": MAX_METRIC_DROP},
        "metrics_runtime": metrics, "max_abs_diff_vs_pytorch_fp32": max_diff,
        "latency": timing,
        "seconds": {"export": exported - started, "validate_and_score": scored - exported,
                    "latency": time.perf_counter() - scored},
    }
    logger.info("%s: %d bytes, %s %.4f (PyTorch fp32 %.4f), p50 %s us (eager %.0f us)", name, size, metric,
                metrics[metric], reference_metrics[metric], timing["runtime_p50_us"], timing["pytorch_eager_p50_us"])
    return artifact, report


def export_run(run, targets: Sequence[str], options, out_dir: Path, progress: Progress | None = None) -> dict:
    """Write out_dir/{model.pte, model.tflite, model.mlpackage, manifest.json, report.json} for `targets`.

    Everything is written to a temporary directory beside out_dir and moved in only once every target validated,
    so a failed export leaves a previous one intact. Returns the report.
    """
    from exporters import exporter
    from exporters.base import MIN_SLOT_SETS
    from toolkit.manifest import SLOT_SCOPE, build_manifest, load_manifest, model_version, write_manifest
    from toolkit.runs import BASE_WEIGHTS, CONFIG_FILE, DUET_WEIGHTS

    targets = list(dict.fromkeys(targets))
    if not targets:
        raise ConfigError("choose at least one export target")
    for name in targets:
        exporter(name)  # unknown names fail before any work
    started = time.perf_counter()
    out_dir = Path(out_dir)
    _check_replaceable(out_dir)
    shape = export_shape(run.task, options)
    model = run.task.device_model(run.duet, shape).eval()
    with torch_threads(options.threads):
        programs = ServingPrograms(run)  # traced once: the eval set's slots and the manifest's slot bounds
        eval_set = build_eval_set(run, programs, model, shape, options.max_eval_devices, progress)
        reference_metrics = score(run.task, eval_set, eval_set.reference)
        devices = parity_devices(np.array(sorted(eval_set.calls)), MIN_SLOT_SETS)
        slot_sets = {f"device-{d}": eval_set.slots[d] for d in devices}
        bounds = programs.slot_bounds()
        try:
            work = work_dir_beside(out_dir)
        except OSError as err:
            raise ConfigError(f"{out_dir}: cannot write beside it ({err.strerror or err})") from err
        try:
            entries, reports = {}, {}
            for name in targets:
                artifact, reports[name] = export_target(name, run, model, eval_set, slot_sets, options, work,
                                                        reference_metrics, progress)
                entries[name] = artifact.manifest_entry(reports[name]["bytes"], reports[name]["sha256"], {
                    "parity": reports[name]["parity"], run.task.selection_metric: reports[name][
                        run.task.selection_metric]})
            manifest = build_manifest(
                model, task=run.task.name, run_name=run.name,
                run_config_sha256=hashlib.sha256((run.path / CONFIG_FILE).read_bytes()).hexdigest(),
                version=model_version(run.path / BASE_WEIGHTS, run.path / DUET_WEIGHTS),
                quantization={"mode": options.quantize, "scope": SLOT_SCOPE, "options": options.to_json()},
                targets=entries, request_schema=run.task.request_schema(), slot_bounds=bounds)
            write_manifest(work, manifest)
            load_manifest(work)  # what the service will read back
            report = {"run": str(run.path), "metric": run.task.selection_metric, "targets": reports, "shape": shape,
                      "options": options.to_json(), "pytorch_fp32": reference_metrics,
                      "seconds_total": time.perf_counter() - started}
            (work / REPORT_FILE).write_text(json.dumps(report, indent=2))
            _move_into_place(work, out_dir)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    return report


def _check_replaceable(out_dir: Path) -> None:
    """Only an empty directory or a previous export may be replaced."""
    from toolkit.manifest import MANIFEST_FILE

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
