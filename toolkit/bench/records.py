"""Benchmark records in the format of ExecuTorch's Android benchmark app (minibench), as both demo apps write them.

A record is one measured value: `{"benchmarkModel": {"name", "backend", "quantization"}, "metric", "actualValue",
"targetValue", "deviceInfo": {"device", "arch", "os", "totalMem", "availMem"}}`. The host benchmark writes the same
records, so phone and host results sit in one table (docs/formats.md, "Benchmark records").
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from toolkit.artifacts import read_small_file, strict_json
from toolkit.errors import DataFormatError, one_line

# Metric names shared with the apps (android_demo/core Metrics, DuetKit BenchmarkMetric). The names minibench also
# writes keep minibench's meaning (docs/formats.md, "Benchmark records"); a metric of ours that differs has its own.
AVG, TRIMMEAN = "avg_inference_latency(ms)", "trimmean_inference_latency(ms)"
P50, P90, P99 = "p50_inference_latency(ms)", "p90_inference_latency(ms)", "p99_inference_latency(ms)"
MODEL_LOAD, LOAD_STATUS = "model_load_time(ms)", "load_status"  # load_status: the runtime's error code, 0 = loaded
RAM_PSS = "ram_pss_usage(mb)"  # minibench's: PSS after the timed calls minus PSS before the load
RAM_PSS_PEAK = "ram_pss_peak(mb)"  # ours: the largest PSS seen (before and after the load, the calls, the swap)
FOOTPRINT, FOOTPRINT_PEAK = "phys_footprint_usage(mb)", "phys_footprint_peak(mb)"  # iOS: the same on phys_footprint
SLOT_SWAP, GENERATE_ROUND_TRIP = "slot_swap_latency(ms)", "generate_round_trip(ms)"
NUM_THREADS = "num_threads"  # the CPU threads the runtime was given (Android)
COMPUTE_UNITS = "coreml_compute_units"  # MLComputeUnits' raw value (iOS): 0 cpuOnly, 1 cpuAndGPU, 2 all, 3 cpuAndNeuralEngine
BENCHMARK_FAILED = "benchmark_failed"  # an app's failure record: 1, and the error in its `error` field
# Metrics of the host benchmark only.
RAM_PSS_MODEL = "ram_pss_model(mb)"  # peak PSS minus the process's PSS just before the model loaded
# What LiteRT's benchmark_model prints (its own measure, not PSS).
FOOTPRINT_TOOL_PEAK = "memory_footprint_peak(mb)"  # "Overall peak memory footprint (MB) via periodic monitoring"
FOOTPRINT_TOOL_DELTA = "memory_footprint_delta(mb)"  # "Memory footprint delta from the start of the tool": overall
MODEL_SIZE = "model_size(kb)"  # the program file (or the weights eager PyTorch loads)
EAGER_RATIO = "latency_ratio_to_eager"  # p50 in the runtime / p50 of eager PyTorch, same inputs, same host
GENERATE_LATENCY = "generate_latency(ms)"  # the generator's p50 for one device
FINETUNE_PER_DEVICE = "finetune_time_per_device(ms)"  # the fine-tuning baseline, from the run's evaluation
FINETUNE_RATIO = "finetune_to_generate_ratio"


def throughput_metric(batch: int) -> str:
    """The generator's throughput at a batch size, in devices per second."""
    return f"generate_throughput_b{batch}(devices/s)"


def accuracy_metric(name: str) -> str:
    """A task metric (uauc, accuracy, ...) as a record's metric name."""
    return f"accuracy_{name}"


BACKENDS = {"executorch": "xnnpack", "tflite": "litert", "coreml": "coreml", "pytorch": "pytorch"}  # the apps' names


@dataclass(frozen=True)
class DeviceInfo:
    """Where a record was measured (memory in bytes)."""

    device: str
    arch: str
    os: str
    totalMem: int  # noqa: N815  (the record format's names)
    availMem: int  # noqa: N815


@dataclass(frozen=True)
class BenchmarkModel:
    """What a record is about: a program file's name without its extension (or "generator", or a method name),
    the backend it ran on and the quantization of its static layers."""

    name: str
    backend: str
    quantization: str


@dataclass(frozen=True)
class Record:
    """One measured value."""

    model: BenchmarkModel
    metric: str
    value: float
    device: DeviceInfo
    target: float = 0.0  # minibench's targetValue (0: no target)
    error: str = ""  # a failure record's message (metric benchmark_failed); "" otherwise and not written

    def to_json(self) -> dict[str, Any]:
        out = {"benchmarkModel": asdict(self.model), "metric": self.metric, "actualValue": self.value,
               "targetValue": self.target, "deviceInfo": asdict(self.device)}
        return {**out, "error": self.error} if self.error else out


def record(model: BenchmarkModel, metric: str, value: float, device: DeviceInfo) -> list[Record]:
    """[the record], or [] when the value is not finite (such a record is omitted, as in the apps)."""
    return [Record(model, metric, float(value), device)] if value is not None and math.isfinite(value) else []


def _ascending_mean(ordered: Sequence[float]) -> float:
    """Kotlin's List<Double>.average() of sorted samples: summed one by one in ascending order, then divided (NaN
    when empty). minibench computes its means so; Python's sum() may compensate (3.12+), hence the plain loop."""
    total = 0.0
    for value in ordered:
        total += value
    return total / len(ordered) if len(ordered) else math.nan


@dataclass(frozen=True)
class LatencyStats:
    """minibench's avg and trimmed mean (the sorted samples' `subList(n/10, n*9/10)`, both summed in ascending order)
    and numpy's linear percentiles, in ms: the apps' cores compute the same to the last bit (golden `stats`)."""

    count: int
    avg: float
    trimmean: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> "LatencyStats":
        samples = np.asarray(samples_ms, dtype=np.float64)
        if not len(samples):
            raise ValueError("latency statistics need at least one sample")
        ordered, n = sorted(float(x) for x in samples), len(samples)
        p50, p90, p99 = np.percentile(ordered, [50, 90, 99])
        return cls(n, _ascending_mean(ordered), _ascending_mean(ordered[n // 10: n * 9 // 10]),
                   float(p50), float(p90), float(p99))

    def records(self, model: BenchmarkModel, device: DeviceInfo) -> list[Record]:
        return [r for metric, value in ((AVG, self.avg), (TRIMMEAN, self.trimmean), (P50, self.p50),
                                        (P90, self.p90), (P99, self.p99)) for r in record(model, metric, value, device)]


def host_device() -> DeviceInfo:
    """This machine as a record's deviceInfo: CPU model and core count, architecture, OS, memory."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    total = avail = 0
    try:
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        total = int(meminfo["MemTotal"].split()[0]) * 1024
        avail = int(meminfo["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        pass
    return DeviceInfo(f"host: {cpu}, {os.cpu_count()} cores", platform.machine(),
                      f"{platform.system()} {platform.release()}", total, avail)


def _text(obj: Mapping, key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise DataFormatError(f"{where}: '{key}' must be text, found {type(value).__name__}")
    return value


def _number(obj: Mapping, key: str, where: str, default: float | None = None) -> float:
    value = obj.get(key, default)
    if type(value) not in (int, float) or not math.isfinite(value):
        raise DataFormatError(f"{where}: '{key}' must be a finite number, found {str(value)[:40]!r}")
    return float(value)


def record_from_json(obj: Any, where: str) -> Record:
    """One record of a results file, checked field by field (DataFormatError naming the record and the field)."""
    if not isinstance(obj, dict):
        raise DataFormatError(f"{where}: a record is a JSON object, found {type(obj).__name__}")
    model, info = obj.get("benchmarkModel"), obj.get("deviceInfo")
    if not isinstance(model, dict):
        raise DataFormatError(f"{where}: 'benchmarkModel' must be an object with name, backend, quantization")
    if not isinstance(info, dict):
        raise DataFormatError(f"{where}: 'deviceInfo' must be an object with device, arch, os, totalMem, availMem")
    return Record(BenchmarkModel(*(_text(model, k, f"{where}.benchmarkModel") for k in ("name", "backend",
                                                                                         "quantization"))),
                  _text(obj, "metric", where), _number(obj, "actualValue", where),
                  DeviceInfo(*(_text(info, k, f"{where}.deviceInfo") for k in ("device", "arch", "os")),
                             *(int(_number(info, k, f"{where}.deviceInfo", 0)) for k in ("totalMem", "availMem"))),
                  _number(obj, "targetValue", where, 0.0), _error_text(obj, where))


def _error_text(obj: Mapping, where: str) -> str:
    """A failure record's `error` (the apps write it with metric benchmark_failed); "" when absent."""
    value = obj.get("error", "")
    if not isinstance(value, str):
        raise DataFormatError(f"{where}: 'error' must be text, found {type(value).__name__}")
    return value


MAX_RESULTS_BYTES = 64 << 20  # a results file larger than this is not one an app wrote (/dev/zero included)


def read_results(path: Path) -> list[Record]:
    """The records of a benchmark_results.json written by either app (or a report.json's `records`)."""
    path = Path(path)
    try:
        content = strict_json(read_small_file(path, MAX_RESULTS_BYTES).decode("utf-8"))
    except FileNotFoundError as err:
        raise DataFormatError(f"{path}: no such results file") from err
    except (OSError, ValueError, RecursionError) as err:  # ValueError: not UTF-8, not JSON, NaN, 5,000 digits
        raise DataFormatError(f"{path}: not readable JSON ({one_line(err, 120)})") from err
    if isinstance(content, dict) and isinstance(content.get("records"), list):  # a report.json of `cli.py bench`
        content = content["records"]
    if not isinstance(content, list):
        raise DataFormatError(f"{path}: a results file is a JSON array of records, found {type(content).__name__}")
    return [record_from_json(item, f"{path}: record {i}") for i, item in enumerate(content)]


def records_json(records: Iterable[Record]) -> list[dict[str, Any]]:
    return [r.to_json() for r in records]
