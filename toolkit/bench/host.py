"""The host benchmark: each program of a run's exports (and eager PyTorch) in a fresh process, the generator's latency
and throughput, and the accuracy the run's evaluation and the exports recorded, as benchmark records."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from toolkit.bench import records as R
from toolkit.errors import ConfigError, one_line
from toolkit.bench.config import HostBenchConfig

logger = logging.getLogger(__name__)

Progress = Callable[[str, int], Callable[[], None]]  # (description, total) -> advance(), as toolkit.cli.console's
NOT_TIMED = {"coreml": "no runtime on Linux (the export checks it with a numpy evaluation of its MIL program)"}
PROBE_TIMEOUT_S = 600


@dataclass
class Export:
    """An export directory of the run: its manifest and the report its export wrote."""

    path: Path
    manifest: dict[str, Any]
    report: dict[str, Any]

    @property
    def quantization(self) -> str:
        return self.manifest["quantization"]["mode"]


def load_exports(run, export_dirs: Sequence[Path]) -> list[Export]:
    """The exports, each checked to be of this run (its manifest names the run's config by digest)."""
    import hashlib

    from toolkit.protocol.manifest import load_manifest
    from toolkit.training.runs import CONFIG_FILE

    digest = hashlib.sha256((run.path / CONFIG_FILE).read_bytes()).hexdigest()
    exports = []
    for path in map(Path, export_dirs):
        manifest = load_manifest(path)
        if manifest["run"]["config_sha256"] != digest:
            raise ConfigError(f"{path} was exported from another run ({manifest['run']['name']}), not {run.path}")
        report_file = path / "report.json"
        try:
            report = json.loads(report_file.read_text())
            report["shape"], report["targets"]  # noqa: B018  (the keys the benchmark reads)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{report_file}: the export's report is missing or unreadable ({one_line(err, 120)}); "
                              f"export again with `cli.py export`") from err
        exports.append(Export(path, manifest, report))
    if not exports:
        raise ConfigError("give at least one export directory of the run (--exports)")
    return exports


def _write_probe_inputs(run, programs, export: Export, work: Path) -> None:
    """The timed call (the first test call of the run at the export's shapes), the slots generated for the first
    test device (bound during the timed calls) and a blob of another device's slots (the swap); `programs` is the
    run's serving.ServingPrograms."""
    from toolkit.model.slots import slot_specs
    from toolkit.protocol.slots import encode_safetensors

    _, inputs, _ = next(iter(run.task.program_calls("test", export.report["shape"])))
    np.savez(work / "inputs.npz", **{f"input_{i}": np.ascontiguousarray(a) for i, a in enumerate(inputs)})
    devices = [int(d) for d in run.task.devices("test")[:2]]
    if not devices:
        raise ConfigError(f"{run.path}: the run's test split has no device to benchmark with")
    np.savez(work / "slots.npz", **programs.slots_for_device(devices[0]))
    (work / "swap.safetensors").write_bytes(encode_safetensors(slot_specs(run.duet),
                                                               programs.slots_for_device(devices[-1])))


def _probe(spec) -> dict[str, Any]:
    from toolkit.bench.probe import write_spec

    command = [sys.executable, "-m", "toolkit.bench.probe", str(write_spec(spec))]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        raise ConfigError(f"measuring {spec.program} took over {PROBE_TIMEOUT_S} s; fewer --calls?") from err
    if done.returncode != 0 or not spec.result_file.exists():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"measuring {spec.program} of {spec.export_dir} failed: {one_line(last, 300)}")
    return json.loads(spec.result_file.read_text())


def runtime_records(run, programs, exports: list[Export], config: HostBenchConfig, cache_dir: Path,
                    device: R.DeviceInfo, progress: Progress | None = None) -> tuple[list[R.Record], list[dict]]:
    """Per export, eager PyTorch (once per export shape) and each target in its runtime, each in a fresh process:
    latency statistics, load time, peak PSS, size, slot swap, the p50 ratio to eager. Returns the records and the
    targets not timed."""
    from toolkit.bench.probe import ProbeSpec

    out, skipped = [], []
    advance = progress("runtimes: load, latency, memory, slot swap",
                       sum(1 + len(e.manifest["targets"]) for e in exports)) if progress else (lambda: None)
    eager_p50: dict[str, float] = {}  # export shape -> eager PyTorch's p50
    with tempfile.TemporaryDirectory(prefix="duet-bench-") as tmp:
        for index, export in enumerate(exports):
            work = Path(tmp) / str(index)
            work.mkdir()
            _write_probe_inputs(run, programs, export, work)
            shape = json.dumps(export.report["shape"], sort_keys=True)
            for name in ["pytorch", *export.manifest["targets"]]:
                if name in NOT_TIMED:
                    skipped.append({"backend": R.BACKENDS.get(name, name), "export": str(export.path),
                                    "quantization": export.quantization, "reason": NOT_TIMED[name]})
                elif name != "pytorch" or shape not in eager_p50:
                    result = _probe(ProbeSpec(name, str(export.path), str(run.path), str(work), str(cache_dir),
                                              config.calls, config.warmup, config.threads))
                    stats = R.LatencyStats.of(result["samples_ms"])
                    eager_p50.setdefault(shape, stats.p50)  # pytorch is measured first
                    file = "model" if name == "pytorch" else export.manifest["targets"][name]["file"]
                    model = R.BenchmarkModel(Path(file).stem, R.BACKENDS.get(name, name), result["quantization"])
                    out += stats.records(model, device)
                    for metric, value in ((R.MODEL_LOAD, result["load_ms"]), (R.LOAD_STATUS, 0.0),
                                          (R.RAM_PSS, result["pss_after_calls_mb"] - result["pss_before_load_mb"]),
                                          (R.RAM_PSS_PEAK, result["pss_peak_mb"]),
                                          (R.RAM_PSS_MODEL, result["pss_peak_mb"] - result["pss_before_load_mb"]),
                                          (R.MODEL_SIZE, result["bytes"] / 1024), (R.SLOT_SWAP, result["swap_ms"]),
                                          (R.EAGER_RATIO, stats.p50 / eager_p50[shape])):
                        out += R.record(model, metric, value, device)
                advance()
    return out, skipped


def generator_records(run, programs, metrics: dict | None, config: HostBenchConfig, device: R.DeviceInfo,
                      progress: Progress | None = None) -> tuple[list[R.Record], dict[str, Any]]:
    """The service's request pipeline (context encoder + generator, traced): p50 for one device, devices per second
    at each batch size (the run's test devices' requests, repeated when a batch is larger than the split), and the
    fine-tuning baseline's time per device from the run's evaluation."""
    import torch

    from toolkit.exporting.measure import torch_threads

    devices = [int(d) for d in run.task.devices("test")]
    largest = max(config.sizes)
    bodies = [run.task.example_request(devices[i % len(devices)]) for i in range(min(largest, 4 * len(devices)))]
    bodies = (bodies * (largest // len(bodies) + 1))[:largest]
    model = R.BenchmarkModel("generator", "pytorch", "none")
    out: list[R.Record] = []
    advance = progress("generator: latency and throughput", 1 + len(config.sizes)) if progress else (lambda: None)
    with torch.inference_mode(), torch_threads(config.threads):
        single = run.task.request_inputs(bodies[:1])
        for _ in range(config.warmup):
            programs.request_slot_batch(single)
        samples = []
        for _ in range(config.calls):
            started = time.perf_counter_ns()
            programs.request_slot_batch(single)
            samples.append((time.perf_counter_ns() - started) / 1e6)
        latency = R.LatencyStats.of(samples).p50
        out += R.record(model, R.GENERATE_LATENCY, latency, device)
        advance()
        curve = {}
        for batch in config.sizes:
            inputs = run.task.request_inputs(bodies[:batch])
            programs.request_slot_batch(inputs)  # warm-up at this shape
            repeats = max(3, min(50, 2048 // batch))
            seconds = []
            for _ in range(repeats):
                started = time.perf_counter()
                programs.request_slot_batch(inputs)
                seconds.append(time.perf_counter() - started)
            curve[batch] = batch / float(np.median(seconds))
            out += R.record(model, R.throughput_metric(batch), curve[batch], device)
            advance()
    finetune_ms = None
    if metrics is not None:
        finetune_ms = metrics.get("finetune_seconds_per_device", float("nan")) * 1e3
        out += R.record(model, R.FINETUNE_PER_DEVICE, finetune_ms, device)
        out += R.record(model, R.FINETUNE_RATIO, finetune_ms / latency, device)
    return out, {"throughput_devices_per_s": curve, "latency_ms": latency, "finetune_ms_per_device": finetune_ms,
                 "distinct_devices": min(len(devices), largest)}


def run_metrics(run) -> dict | None:
    """The run's metrics.json (checked), or None before `cli.py evaluate`."""
    from toolkit.evaluation.report import load_run_file
    from toolkit.training.runs import METRICS_FILE

    return load_run_file(run.path, METRICS_FILE) if (run.path / METRICS_FILE).exists() else None


def accuracy_records(run, metrics: dict | None, exports: list[Export], device: R.DeviceInfo) -> list[R.Record]:
    """Base, fine-tuning and DUET from the run's evaluation (PyTorch), and each export's score in each runtime."""
    from toolkit.training.runs import METHODS

    metric = run.task.selection_metric
    out: list[R.Record] = []
    if metrics is not None:
        for method in METHODS:
            out += R.record(R.BenchmarkModel(method, "pytorch", "none"), R.accuracy_metric(metric),
                            metrics[method][metric], device)
    for export in exports:
        for name, entry in export.report["targets"].items():
            model = R.BenchmarkModel(Path(entry["file"]).stem, R.BACKENDS.get(name, name), export.quantization)
            out += R.record(model, R.accuracy_metric(metric), entry[metric]["runtime"], device)
    return out
