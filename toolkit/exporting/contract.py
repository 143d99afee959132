"""The exporter contract every target implements and the export harness relies on: options, the Artifact record,
typed errors, runtime runners, input checks and the parity check. Targets live outside the toolkit (the `exporters`
package, or a package of the user's) and are found through the `duet.exporters` entry points (toolkit.exporting.targets).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from toolkit.errors import ConfigError, DuetError, ToleranceExceeded
from toolkit.options import option
from toolkit.protocol.slots import ProgramSpecs, TensorSpec, check_slots

logger = logging.getLogger(__name__)



class DeviceModel(ProgramSpecs, Protocol):
    """What a target converts (toolkit.exporting.program.DeviceModel implements it, on PyTorch): its specs; forward
    (inputs, then slots); valid example inputs; the form to convert; eager reference outputs."""

    def __call__(self, *args: Any) -> Any: ...

    def example_inputs(self, seed: int = 0) -> tuple: ...

    def for_export(self) -> Any: ...

    def slot_tensors(self, slots: Mapping[str, np.ndarray]) -> tuple: ...

    def run(self, inputs: tuple, slots: Mapping[str, np.ndarray]) -> np.ndarray: ...


QUANTIZE_MODES = ("int8", "none")
FP32_ATOL = 1e-4  # an fp32 program may differ from PyTorch eager by at most this (max abs diff)
INT8_RTOL = 0.1  # an int8 program's max abs diff may reach this share of PyTorch's largest |output|
MAX_METRIC_DROP = 0.005  # a program may lose at most this much of the task's selection metric (UAUC) vs PyTorch fp32
MIN_ROW_ELEMENTS = 4  # per-row int8 plus its scale (and zero point) shrinks only tensors with at least this per row
MIN_SLOT_SETS = 3  # parity is checked on at least this many generated slot sets (plus one random probe)
NUMPY_DTYPES = {"int32": np.int32, "float32": np.float32}


@dataclass(frozen=True)
class ExportOptions:
    """How to export: compression, fixed shapes, and how validation measures. Saved in report.json."""

    quantize: str = option("int8", "int8: compress the static layers with each target's own tool (slots stay "
                                   "fp32); none: fp32 throughout.", choices=QUANTIZE_MODES)
    shape: tuple[tuple[str, int], ...] = ()  # overrides of the task's fixed export shapes, as (name, size) pairs
    min_quant_elements: int = option(1024, "Weight tensors with fewer elements stay fp32 (not worth compressing).",
                                     minimum=0, maximum=2**40)
    max_int8_rows: int = option(1024, "Static layers applied to more rows than this per call stay fp32 in ExecuTorch "
                                      "and TFLite, whose int8 layers quantize their input at every call (a 3,000-row "
                                      "32x32 layer: 3-4x slower in int8, for 3 KB saved).", minimum=1,
                                 maximum=2**40)
    target_options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()  # (target, ((name, value), ...)), ...:
    # options only one target reads (e.g. coreml palettize_bits); each is checked by that target's check_options
    threads: int = option(1, "CPU threads of each runtime and of PyTorch while validating and timing.",
                          flag="--eval-threads", minimum=1, maximum=256)
    latency_calls: int = option(200, "Calls timed for each p50 latency.", minimum=1, maximum=1_000_000)
    max_eval_devices: int = option(0, "Score only the first N test devices in each runtime (0 = all; for quick "
                                      "trials).", minimum=0, maximum=10_000_000)

    def __post_init__(self) -> None:
        if self.quantize not in QUANTIZE_MODES:
            raise ConfigError(f"quantize must be one of {', '.join(QUANTIZE_MODES)}, got {self.quantize!r}")
        from toolkit.exporting.targets import exporter

        for target, _ in self.target_options:
            check = getattr(exporter(target), "check_options", None)
            if check is None:
                raise ConfigError(f"the {target} target takes no options of its own")
            check(self)
        if self.threads < 1 or self.latency_calls < 1 or self.min_quant_elements < 0 or self.max_eval_devices < 0 \
                or self.max_int8_rows < 1:
            raise ConfigError("threads, latency_calls and max_int8_rows must be >= 1; min_quant_elements, "
                              "max_eval_devices >= 0")

    @property
    def compressed(self) -> bool:
        return self.quantize != "none"

    def for_target(self, target: str) -> dict[str, Any]:
        """The options of `target` alone ({} when none were given)."""
        return dict(dict(self.target_options).get(target, ()))

    def to_json(self) -> dict:
        return {"quantize": self.quantize, "shape": dict(self.shape), "min_quant_elements": self.min_quant_elements,
                "max_int8_rows": self.max_int8_rows,
                "target_options": {t: dict(o) for t, o in self.target_options}, "threads": self.threads,
                "latency_calls": self.latency_calls, "max_eval_devices": self.max_eval_devices}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "ExportOptions":
        """Rebuild the options saved in a report.json or manifest.json (quantization.options)."""
        fields = dict(obj)
        fields["shape"] = tuple((str(k), int(v)) for k, v in dict(fields.get("shape", {})).items())
        targets = dict(fields.get("target_options", {}))
        if fields.pop("coreml_palettize_bits", 0):  # a report written before targets had their own options
            targets["coreml"] = {"palettize_bits": obj["coreml_palettize_bits"]}
        fields["target_options"] = tuple((t, tuple(dict(o).items())) for t, o in targets.items())
        return cls(**fields)


@dataclass(frozen=True)
class Artifact:
    """One exported program file (or package directory) and how its runtime names things."""

    target: str  # registry name, e.g. "executorch"
    path: Path  # the file or package directory written
    runtime: str  # runtime and version it is validated in
    quantization: str  # how the static layers were compressed ("none (fp32)" when not)
    input_names: tuple[str, ...]  # the runtime's names of the program arguments, in call order
    output_name: str  # the runtime's name of the output
    served_as: str = "file"  # "file", or "zip" for a package directory
    notes: tuple[str, ...] = ()  # what an app needs to know to run it (kernels to link, compute units...)

    def manifest_entry(self, size: int, sha256: str, validation: Mapping[str, Any]) -> dict:
        entry = {"file": self.path.name, "bytes": size, "sha256": sha256, "runtime": self.runtime,
                 "quantization": self.quantization, "served_as": self.served_as,
                 "input_names": list(self.input_names), "output_name": self.output_name,
                 "validation": dict(validation)}
        if self.notes:
            entry["notes"] = list(self.notes)
        return entry


class ExportError(DuetError, RuntimeError):
    """A target's tool failed at one stage of export; the message names the target and the stage."""


class InputShapeError(DuetError, ValueError):
    """A program input is missing or has the wrong shape or dtype."""


class ParityError(ToleranceExceeded):
    """A runtime's output differs from PyTorch eager by more than the target's tolerance."""

    def __init__(self, target: str, output: str, max_abs_diff: float, tolerance: float, case: str):
        self.target, self.output, self.max_abs_diff, self.tolerance, self.case = (
            target, output, max_abs_diff, tolerance, case)
        super().__init__(f"{target}: output {output!r} differs from PyTorch eager by max abs diff {max_abs_diff:.3g} "
                         f"(tolerance {tolerance:.3g}) with slot set {case}")


class AccuracyDropError(ToleranceExceeded):
    """A compressed program loses more accuracy in its runtime than allowed."""

    def __init__(self, target: str, metric: str, runtime_value: float, reference: float, allowed: float):
        self.target, self.metric, self.runtime_value, self.reference, self.allowed = (
            target, metric, runtime_value, reference, allowed)
        super().__init__(f"{target}: {metric} {runtime_value:.4f} in the runtime vs {reference:.4f} in PyTorch fp32; "
                         f"a drop of {reference - runtime_value:.4f} exceeds the allowed {allowed}")


class SignatureError(DuetError, ValueError):
    """An exported program's inputs or outputs disagree with the device model's specs."""


def example_slots(model: DeviceModel, seed: int = 0) -> dict[str, np.ndarray]:
    """Random slots of the spec's shapes (export needs example values; they are never baked in)."""
    rng = np.random.default_rng(seed)
    return {s.name: (rng.normal(size=s.shape) * 0.5).astype(np.float32) for s in model.slot_specs}


def example_args(model: DeviceModel, seed: int = 0) -> tuple:
    """(*inputs, *slots) as torch tensors, to trace or export `model` with."""
    return tuple(model.example_inputs(seed)) + model.slot_tensors(example_slots(model, seed))


def check_inputs(specs: Sequence[TensorSpec], inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Raise InputShapeError unless `inputs` match the specs in number, shape and dtype; returns contiguous arrays."""
    if len(inputs) != len(specs):
        raise InputShapeError(f"expected {len(specs)} inputs {[s.name for s in specs]}, got {len(inputs)}")
    checked = []
    for spec, value in zip(specs, inputs):
        array = np.asarray(value)
        if tuple(array.shape) != spec.shape:
            raise InputShapeError(f"input {spec.name!r} should have shape {list(spec.shape)}, got {list(array.shape)}")
        if array.dtype != NUMPY_DTYPES[spec.dtype]:
            raise InputShapeError(f"input {spec.name!r} should be {spec.dtype}, got {array.dtype}")
        checked.append(np.ascontiguousarray(array))
    return checked


class Runner(ABC):
    """An exported program loaded in its runtime, called like the device model: (inputs, slots) -> output."""

    is_runtime = True  # False for a reference interpreter standing in for a runtime (its speed means nothing)

    def __init__(self, artifact: Artifact, model: DeviceModel):
        self.artifact, self.input_specs, self.slot_specs = artifact, list(model.input_specs), list(model.slot_specs)
        self.output_spec = model.output_spec

    def __call__(self, inputs: Sequence[np.ndarray], slots: Mapping[str, np.ndarray]) -> np.ndarray:
        """One call; inputs and slots are checked against the specs before the runtime sees them."""
        return self.call_many([inputs], slots)[0]

    def call_many(self, calls: Sequence[Sequence[np.ndarray]], slots: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Several calls with the same slots (one device), each checked; outputs are copies."""
        check_slots(self.slot_specs, slots, f"{self.artifact.target} slots")
        slot_args = [np.ascontiguousarray(slots[s.name], dtype=np.float32) for s in self.slot_specs]
        checked = [check_inputs(self.input_specs, inputs) for inputs in calls]
        return self._run_many(checked, slot_args)

    def call_checked(self, args: list[np.ndarray]) -> np.ndarray:
        """One call on arguments already checked (inputs, then slots): what a latency measurement times."""
        return self._run(args)

    def _run_many(self, calls: list[list[np.ndarray]], slot_args: list[np.ndarray]) -> list[np.ndarray]:
        return [self._run(inputs + slot_args) for inputs in calls]

    @abstractmethod
    def _run(self, args: list[np.ndarray]) -> np.ndarray:
        """Run the program on checked arguments (inputs then slots); return a copy of the output."""


@dataclass
class ParityReport:
    """Max abs diff between a runtime and PyTorch eager, and the tolerance applied, per slot set."""

    target: str
    rule: str  # how the tolerance was set
    cases: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> {"max_abs_diff", "tolerance"}

    def to_json(self) -> dict:
        return {"rule": self.rule, "slot_sets": len(self.cases), "cases": {k: dict(v) for k, v in self.cases.items()}}


def parity_cases(model: DeviceModel, slot_sets: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, dict]:
    """The generated slot sets plus one random probe: a program with any slot baked in cannot match all of them."""
    if len(slot_sets) < MIN_SLOT_SETS:
        raise ConfigError(f"parity needs at least {MIN_SLOT_SETS} slot sets, got {len(slot_sets)}")
    for label, slots in slot_sets.items():
        check_slots(model.slot_specs, slots, f"slot set {label}")
    cases = {label: dict(slots) for label, slots in slot_sets.items()}
    cases["random-probe"] = example_slots(model, seed=12345)
    return cases


def check_parity(runner: Runner, model: DeviceModel, slot_sets: Mapping[str, Mapping[str, np.ndarray]],
                 compressed: bool, seeds: Sequence[int] = (0, 1)) -> ParityReport:
    """Run the program and PyTorch eager on the same inputs for every slot set; raise ParityError past tolerance.

    fp32 programs must agree within FP32_ATOL; compressed ones within INT8_RTOL of PyTorch's largest |output|.
    """
    rule = f"max abs diff <= {INT8_RTOL} * max|PyTorch output|" if compressed else f"max abs diff <= {FP32_ATOL}"
    report = ParityReport(runner.artifact.target, rule)
    for label, slots in parity_cases(model, slot_sets).items():
        worst, allowed = 0.0, float("inf")
        for seed in seeds:
            inputs = model.example_inputs(seed)
            expected = model.run(inputs, slots)
            got = runner([t.numpy() for t in inputs], slots)
            if got.shape != expected.shape:
                raise ParityError(runner.artifact.target, model.output_spec.name, float("inf"), 0.0,
                                  f"{label} (shape {list(got.shape)}, expected {list(expected.shape)})")
            tolerance = INT8_RTOL * float(np.abs(expected).max()) if compressed else FP32_ATOL
            diff = float(np.abs(got.astype(np.float64) - expected).max())
            if not diff <= tolerance:  # also catches NaN
                raise ParityError(runner.artifact.target, model.output_spec.name, diff, tolerance, label)
            worst, allowed = max(worst, diff), min(allowed, tolerance)
        report.cases[label] = {"max_abs_diff": worst, "tolerance": allowed}
    return report


def check_signature(target: str, what: str, found: Sequence[tuple[str, tuple[int, ...], str]],
                    expected: Sequence[tuple[str, tuple[int, ...], str]]) -> None:
    """Compare (name, shape, dtype) lists of a program's inputs or outputs with the specs; SignatureError if not equal."""
    found, expected = [tuple(x) for x in found], [tuple(x) for x in expected]
    if found != expected:
        raise SignatureError(f"{target}: program {what} {found} do not match the device model's {expected}")
