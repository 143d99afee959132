"""Export a run's device model to the requested targets, validate each in its runtime, write manifest and report."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from toolkit.errors import ConfigError

logger = logging.getLogger(__name__)

REPORT_FILE = "report.json"
WARMUP_CALLS = 10  # untimed calls before the latency measurement
Progress = Callable[[str, int], Callable[[], None]]  # (description, total) -> advance(); as cli._progress_bars


@dataclass
class EvalSet:
    """What validation reads: test calls grouped by device, each device's generated slots, PyTorch's outputs."""

    calls: dict[int, list[tuple[tuple[np.ndarray, ...], Any]]]  # device -> [(program inputs, labels)]
    slots: dict[int, dict[str, np.ndarray]]  # device -> generated slots
    reference: dict[int, list[np.ndarray]]  # device -> PyTorch fp32 eager outputs, in call order

    @property
    def n_calls(self) -> int:
        return sum(len(c) for c in self.calls.values())


def export_shape(task, options) -> dict[str, int]:
    """The task's default fixed shapes with the options' overrides; unknown names are a ConfigError."""
    shape = dict(task.export_shape_defaults())
    for name, value in options.shape:
        if name not in shape:
            raise ConfigError(f"unknown export shape {name!r}; this task's shapes are {', '.join(shape)}")
        if int(value) < 1:
            raise ConfigError(f"export shape {name} must be at least 1, got {value}")
        shape[name] = int(value)
    return shape


def parity_devices(devices: np.ndarray, count: int) -> list[int]:
    """`count` distinct test devices spread over the list (first, ..., last), for the parity slot sets."""
    if len(devices) < count:
        raise ConfigError(f"parity needs {count} test devices with generated slots; the run has {len(devices)}")
    picks = np.unique(np.linspace(0, len(devices) - 1, count).round().astype(int))
    return [int(devices[i]) for i in picks]


def build_eval_set(run, model, shape: Mapping[str, int], max_devices: int, progress: Progress | None) -> EvalSet:
    """Every test call of the split (or of the first `max_devices` devices), with PyTorch fp32 outputs."""
    from exporters.base import check_inputs
    from toolkit.generation import slots_for_device

    calls: dict[int, list] = {}
    for device, inputs, labels in run.task.device_eval_calls("test", shape):
        if max_devices and device not in calls and len(calls) >= max_devices:
            continue
        if not calls:  # the task's calls must fit the program's fixed shapes (an override may exceed its data)
            check_inputs(model.input_specs, inputs)
        calls.setdefault(device, []).append((tuple(inputs), labels))
    if not calls:
        raise ConfigError("the run's test split has no device to validate the export on")
    advance = progress("PyTorch fp32 reference", len(calls)) if progress else (lambda: None)
    reference_calls = EagerCalls(model)
    slots, reference = {}, {}
    for device, device_calls in calls.items():
        slots[device] = slots_for_device(run, device, "test")
        reference[device] = reference_calls([inputs for inputs, _ in device_calls], slots[device])
        advance()
    return EvalSet(calls, slots, reference)


class EagerCalls:
    """PyTorch eager outputs of many calls that share slots, vectorised with torch.func.vmap over the calls.

    vmap runs the same per-call program on a stack of calls. Before the first use, it is checked against one
    call at a time on the model's example inputs and the fastest batch size is picked (small batches suit
    programs with large intermediates); a model vmap cannot run, or that disagrees, runs one call at a time.
    """

    BATCH_SIZES = (4, 16, 64)  # vmap batch sizes tried
    TRIAL_CALLS = 64  # example calls timed per choice
    CHECK_ATOL = 1e-5  # vmap and one-call-at-a-time outputs may differ by float rounding only

    def __init__(self, model):
        self.model, self.batch = model, None  # batch: chosen vmap batch size, 0 = one call at a time

    def one_at_a_time(self, calls, slot_tensors) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            return [self.model(*(torch.from_numpy(np.asarray(x)) for x in inputs), *slot_tensors).numpy().copy()
                    for inputs in calls]

    def batched(self, calls, slot_tensors, batch: int) -> list[np.ndarray]:
        import torch

        n_inputs = len(calls[0])
        forward = torch.func.vmap(lambda *args: self.model(*args), in_dims=(0,) * n_inputs + (None,) * len(slot_tensors))
        outputs = []
        with torch.no_grad():
            for start in range(0, len(calls), batch):
                chunk = calls[start : start + batch]
                stacked = [torch.from_numpy(np.stack([np.asarray(c[i]) for c in chunk])) for i in range(n_inputs)]
                outputs.extend(row.copy() for row in forward(*stacked, *slot_tensors).numpy())
        return outputs

    def choose(self, slot_tensors) -> int:
        """The fastest exact way to run many calls: a vmap batch size, or 0 for one call at a time."""
        calls = [[t.numpy() for t in self.model.example_inputs(seed)] for seed in range(self.TRIAL_CALLS)]
        started = time.perf_counter()
        single = self.one_at_a_time(calls, slot_tensors)
        best, best_time = 0, time.perf_counter() - started
        for batch in self.BATCH_SIZES:
            try:
                started = time.perf_counter()
                outputs = self.batched(calls, slot_tensors, batch)
                seconds = time.perf_counter() - started
            except Exception as err:  # an op without a batching rule: stay exact and slow
                logger.info("PyTorch reference runs one call at a time (vmap failed: %s)", err)
                return 0
            if not all(o.shape == s.shape and np.abs(o - s).max() <= self.CHECK_ATOL for o, s in zip(outputs, single)):
                logger.info("PyTorch reference runs one call at a time (vmap disagrees with single calls)")
                return 0
            if seconds < best_time:
                best, best_time = batch, seconds
        return best

    def __call__(self, calls, slots) -> list[np.ndarray]:
        slot_tensors = self.model.slot_tensors(slots)
        if self.batch is None:
            self.batch = self.choose(slot_tensors)
        return self.batched(calls, slot_tensors, self.batch) if self.batch else self.one_at_a_time(calls, slot_tensors)


def score(task, eval_set: EvalSet, outputs: Mapping[int, Sequence[np.ndarray]]) -> dict[str, float]:
    rows = [(device, labels, out) for device, device_calls in eval_set.calls.items()
            for (_, labels), out in zip(device_calls, outputs[device])]
    return {k: float(v) for k, v in task.metrics_from_device_calls(rows).items()}


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def p50_us(fn: Callable[[], Any], calls: int) -> float:
    for _ in range(WARMUP_CALLS):
        fn()
    times = np.empty(calls)
    for i in range(calls):
        started = time.perf_counter_ns()
        fn()
        times[i] = time.perf_counter_ns() - started
    return float(np.median(times) / 1e3)


def latency(runner, model, eval_set: EvalSet, calls: int) -> dict[str, Any]:
    """p50 of one call, same inputs and slots, in the runtime and in PyTorch eager fp32 (same process, same threads).

    A runner that is a reference interpreter rather than the target's runtime (Core ML off macOS) is not timed.
    """
    import torch

    device = next(iter(eval_set.calls))
    inputs = [np.ascontiguousarray(x) for x in eval_set.calls[device][0][0]]
    slots = eval_set.slots[device]
    args = inputs + [np.ascontiguousarray(slots[s.name], dtype=np.float32) for s in model.slot_specs]
    tensors = [torch.from_numpy(a) for a in args]
    with torch.no_grad():
        eager = p50_us(lambda: model(*tensors), calls)
    timed = getattr(runner, "is_runtime", True)
    runtime = p50_us(lambda: runner._run(args), calls) if timed else None
    return {"runtime_p50_us": runtime, "pytorch_eager_p50_us": eager, "calls": calls,
            "measured_with": type(runner).__name__ if timed else f"not timed: {type(runner).__name__} is a reference "
                                                                   f"interpreter, not the target's runtime"}


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
        eval_set = build_eval_set(run, model, shape, options.max_eval_devices, progress)
        reference_metrics = score(run.task, eval_set, eval_set.reference)
        devices = parity_devices(np.array(sorted(eval_set.calls)), MIN_SLOT_SETS)
        slot_sets = {f"device-{d}": eval_set.slots[d] for d in devices}
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
        work.chmod(0o755)  # mkdtemp makes it private; the service may run as another user
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
                targets=entries, request_schema=run.task.request_schema())
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
