"""The export's measurement harness: a run's test calls at the export's shapes, PyTorch's reference outputs, the
task's metric from program outputs, and latency in a runtime against eager PyTorch (used by toolkit.exporting.transaction)."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from toolkit.errors import ConfigError

if TYPE_CHECKING:  # types only
    from toolkit.exporting.contract import ExportOptions
    from toolkit.tasks.base import Task

logger = logging.getLogger(__name__)

WARMUP_CALLS = 10  # untimed calls before the latency measurement
LATENCY_BLOCKS = 10  # runtime and eager calls alternate in this many blocks, so both see the same machine load
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


def export_shape(task: Task, options: ExportOptions) -> dict[str, int]:
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


def build_eval_set(run, programs, model, shape: Mapping[str, int], max_devices: int,
                   progress: Progress | None) -> EvalSet:
    """Every test call of the split (or of the first `max_devices` devices), with PyTorch fp32 outputs and the
    slots `programs` (the run's serving.ServingPrograms) generate for each device."""
    from toolkit.exporting.contract import check_inputs

    calls: dict[int, list] = {}
    for device, inputs, labels in run.task.program_calls("test", shape):
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
        slots[device] = programs.slots_for_device(device, "test")
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


def score(task: Task, eval_set: EvalSet, outputs: Mapping[int, Sequence[np.ndarray]]) -> dict[str, float]:
    rows = [(device, labels, out) for device, device_calls in eval_set.calls.items()
            for (_, labels), out in zip(device_calls, outputs[device])]
    from toolkit.tasks.programs import metrics_of_calls

    return metrics_of_calls(task, rows)


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
    return p50s_us([fn], calls)[0]


def p50s_us(fns: Sequence[Callable[[], Any]], calls: int) -> list[float]:
    """p50 of `calls` timed calls of each function, the functions taking turns in LATENCY_BLOCKS blocks of calls."""
    for fn in fns:
        for _ in range(WARMUP_CALLS):
            fn()
    times = np.empty((len(fns), calls))
    block = -(-calls // LATENCY_BLOCKS)
    for start in range(0, calls, block):
        for row, fn in enumerate(fns):
            for i in range(start, min(start + block, calls)):
                started = time.perf_counter_ns()
                fn()
                times[row, i] = time.perf_counter_ns() - started
    return [float(np.median(row) / 1e3) for row in times]


def latency(runner, model, eval_set: EvalSet, calls: int) -> dict[str, Any]:
    """p50 of one call, same inputs and slots, in the runtime and in PyTorch eager fp32 (same process, same threads,
    the two taking turns in blocks of calls). A runtime call is what an app's is: the inputs and slots copied into
    the program, the program run, the output copied out.

    A runner that is a reference interpreter rather than the target's runtime (Core ML off macOS) is not timed.
    """
    import torch

    device = next(iter(eval_set.calls))
    inputs = [np.ascontiguousarray(x) for x in eval_set.calls[device][0][0]]
    slots = eval_set.slots[device]
    args = inputs + [np.ascontiguousarray(slots[s.name], dtype=np.float32) for s in model.slot_specs]
    tensors = [torch.from_numpy(a) for a in args]
    timed = getattr(runner, "is_runtime", True)
    with torch.no_grad():
        if timed:
            eager, runtime = p50s_us([lambda: model(*tensors), lambda: runner.call_checked(args)], calls)
        else:
            eager, runtime = p50_us(lambda: model(*tensors), calls), None
    return {"runtime_p50_us": runtime, "pytorch_eager_p50_us": eager, "calls": calls,
            "measured_with": type(runner).__name__ if timed else f"not timed: {type(runner).__name__} is a reference "
                                                                   f"interpreter, not the target's runtime"}
