"""Evaluate a run on every test device: Base, per-device fine-tuning and DUET, timed in the same process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from toolkit.artifacts import write_json
from toolkit.config import FinetuneConfig
from toolkit.errors import EvaluationError
from toolkit.model.slots import base_slots
from toolkit.training.distributed import synchronize, torch_device
from toolkit.training.runs import CONFIG_FILE, EVALUATION_FILE, METHODS, METRICS_FILE, SHIFTED_FILE, Run
from toolkit.training.serving import ServingPrograms
from toolkit.training.steps import SplitOutputs, collect, finetune_and_score, split_outputs


def generate_timings(run: Run, programs: ServingPrograms, devices: np.ndarray, split: str = "test") -> dict[str, float]:
    """Mean wall times for one device (batch 1): the generator forward as served, and the same with the
    device's context encoded from its raw samples (ids and timestamps, or images) first."""
    serving = programs.generator
    forward, end_to_end = [], []
    with torch.inference_mode():
        for device in devices:
            started = time.perf_counter()
            context = run.task.device_context(run.duet, int(device), split)
            encoded = time.perf_counter()
            serving(context.vectors, context.mask)
            synchronize(context.vectors.device)
            done = time.perf_counter()
            forward.append(done - encoded)
            end_to_end.append(done - started)
    skip = 1 if len(devices) > 1 else 0  # the first call pays one-off costs
    return {"forward": float(np.mean(forward[skip:])), "with_context": float(np.mean(end_to_end[skip:]))}


def slot_stability(run: Run, programs: ServingPrograms, devices: np.ndarray, split: str = "test") -> float:
    """How far a device's generated slots move when its latest sample is left out of its context:
    mean over devices of ||slots(context) - slots(context without its latest sample)|| / ||Base slots||.

    Contexts are ordered oldest to newest and right-aligned, so the latest sample is the last present one.
    """
    serving = programs.generator
    base_norm = float(torch.sqrt(sum((p.detach() ** 2).sum() for p in base_slots(run.duet))))
    changes = []
    with torch.inference_mode():
        for device in devices:
            context = run.task.device_context(run.duet, int(device), split)
            if int(context.mask.sum()) < 2:
                continue
            shorter = context.mask.clone()
            shorter[0, int(torch.nonzero(shorter[0])[-1])] = False
            full, reduced = serving(context.vectors, context.mask), serving(context.vectors, shorter)
            change = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(full, reduced)))
            changes.append(float(change) / base_norm)
    return float(np.mean(changes)) if changes else float("nan")


def evaluate_run(run: Run, finetune: FinetuneConfig, shifted_fraction: float = 0.25,
                 progress: Callable[[str, int], Callable[[], None]] | None = None) -> dict[str, dict]:
    """{"metrics": metrics.json, "shifted": the same on the most-shifted devices, "settings": how it was run}.

    Every method runs on `finetune.torch_device` (the run's models are moved there)."""
    task = run.task
    compute_device = torch_device(finetune.torch_device)  # (`device` names a user's device below)
    for module in (run.base, run.duet, run.generator):
        module.to(compute_device)
    devices = task.devices("test")
    outputs: dict[str, SplitOutputs] = {"base": split_outputs(task, run.base, "test", None),
                                        "duet": split_outputs(task, run.duet, "test", run.generator)}
    check_finite_outputs(outputs, run)  # before the fine-tuning: a broken run stops in seconds
    advance = progress("fine-tuning devices", len(devices)) if progress else None
    seconds, tuned = [], []
    settings = finetune.resolve(task.finetune_defaults())
    for device in devices:
        device_outputs, spent = finetune_and_score(task, run.base, int(device), settings)
        tuned.append(device_outputs)
        seconds.append(spent)
        if advance:
            advance()
    outputs["finetune"] = _joined(tuned)
    check_finite_outputs({"finetune": outputs["finetune"]}, run)
    metrics: dict[str, Any] = {m: outputs[m].metrics(task) for m in METHODS}
    metrics["finetune_seconds_per_device"] = float(np.mean(seconds))
    programs = ServingPrograms(run)
    timings = generate_timings(run, programs, devices)
    metrics["generate_seconds_per_device"] = timings["forward"]
    shifted = task.shifted_devices(shifted_fraction)
    shifted_metrics: dict[str, Any] = {"fraction": shifted_fraction, "of_devices": int(len(devices))}
    if shifted is None:  # the task has no measure of how far a device's data moved
        shifted_metrics["devices"] = 0
    else:
        shifted_metrics["devices"] = int(len(shifted))
        shifted_metrics.update({m: outputs[m].metrics(task, shifted) for m in METHODS})
    settings_used = {"finetune": settings, "shifted_fraction": shifted_fraction, "test_devices": int(len(devices)),
                     "torch_threads": torch.get_num_threads(), "torch_device": compute_device.type,
                     "generate_seconds_per_device_with_context_encoding": timings["with_context"],
                     "slot_change_per_new_sample": slot_stability(run, programs, devices),
                     "per_device": {m: per_device(task, outputs[m]) for m in METHODS}}
    return {"metrics": metrics, "shifted": shifted_metrics, "settings": settings_used}


def per_device(task, outputs: SplitOutputs) -> dict[str, float]:
    """The selection metric of each device alone, by device id (what analyses by kind of device read)."""
    return {str(int(d)): float(outputs.metrics(task, np.array([d]))[task.selection_metric])
            for d in np.unique(outputs.devices)}


def write_evaluation(run_dir: Path, result: dict[str, dict]) -> list[Path]:
    """metrics.json, metrics_shifted.json and evaluation.json of an `evaluate_run` result, in the run directory."""
    return [write_json(Path(run_dir) / name, result[part])
            for name, part in ((METRICS_FILE, "metrics"), (SHIFTED_FILE, "shifted"), (EVALUATION_FILE, "settings"))]


def check_finite_outputs(outputs: dict[str, SplitOutputs], run: Run) -> None:
    """EvaluationError at the first device a method scored with NaN or infinity: NaN sorts first in a ranking, so a
    broken model would otherwise report perfect hit rates."""
    for method, scored in outputs.items():
        values = np.asarray(scored.outputs, dtype=np.float64).reshape(len(scored.outputs), -1)
        bad = ~np.isfinite(values).all(1)
        if bad.any():
            device = scored.devices[int(np.argmax(bad))]
            mine = values[scored.devices == device]
            raise EvaluationError(f"{run.path}: {method} scored test device {device} with {int(np.isnan(mine).sum())} "
                                  f"NaN and {int(np.isinf(mine).sum())} infinite values; check the run's "
                                  f"{CONFIG_FILE} and weights (nothing was written)")


def _joined(parts: list[SplitOutputs]) -> SplitOutputs:
    """One SplitOutputs of several devices' (the fine-tuned copies', each scored on its own device)."""
    if not parts:
        return collect([])
    targets = None if parts[0].targets is None else np.concatenate([p.targets for p in parts])
    return SplitOutputs(np.concatenate([p.outputs for p in parts]), targets, np.concatenate([p.devices for p in parts]))

