"""A task's exported program, by default: its fixed shapes, its inputs and output, the calls that score a split on a
device, and the metrics of those calls. Built from the task's test batches and its model's forward, so a task needs
no export code of its own.

A call is (device, program inputs as numpy arrays at the fixed shapes, CallTargets): a device's rows of a batch in
chunks of `batch` rows, the last chunk padded with zero rows, which the metrics leave out.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from toolkit.protocol.slots import TensorSpec

if TYPE_CHECKING:
    from toolkit.tasks.base import Batch, Task

PROGRAM_DTYPES = {"i": ("int32", np.int32), "u": ("int32", np.int32), "b": ("int32", np.int32),
                  "f": ("float32", np.float32)}  # numpy kind -> what programs take (LiteRT has no int64 inputs)


@dataclass
class CallTargets:
    """What one program call is scored against: the targets of its rows (None: the task's outputs need none) and how
    many of its rows are real (the rest padding)."""

    targets: Any
    rows: int


def _first_batch(task: "Task", split: str = "test") -> "Batch":
    batch = next(iter(task.batches(split)), None)
    if batch is None:
        from toolkit.errors import ConfigError

        raise ConfigError(f"the task's {split} split has no batch to shape the exported program by")
    return batch


def rows_per_device(task: "Task") -> int:
    """How many input rows one device has in a test batch (a batch's inputs hold rows x this)."""
    batch = _first_batch(task)
    return max(len(batch.inputs[0]) // max(batch.rows, 1), 1)


def _as_program_array(value: Any) -> np.ndarray:
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    return array.astype(PROGRAM_DTYPES[array.dtype.kind][1], copy=False)


def input_names(model: nn.Module, count: int) -> list[str]:
    """The names of the model's forward arguments (input_0, ... where it takes *args)."""
    try:
        parameters = [p for p in inspect.signature(model.forward).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        parameters = []
    names = [p.name for p in parameters[:count]]
    return names + [f"input_{i}" for i in range(len(names), count)]


def default_program_specs(task: "Task", model: nn.Module,
                          export_shape: Mapping[str, int]) -> tuple[list[TensorSpec], TensorSpec]:
    """The model's inputs, `batch` rows each (named as its forward names them; integers int32), and its output."""
    _, inputs, _ = next(iter(task.program_calls("test", export_shape)))
    names = input_names(model, len(inputs))
    specs = [TensorSpec(name, tuple(array.shape), PROGRAM_DTYPES[array.dtype.kind][0])
             for name, array in zip(names, inputs)]
    with torch.no_grad():
        output = model.eval()(*(torch.from_numpy(np.asarray(a)) for a in inputs))
    return specs, TensorSpec("output", tuple(output.shape), "float32")


def default_program_calls(task: "Task", split: str, export_shape: Mapping[str, int]) -> Iterator[tuple[int, tuple, Any]]:
    """Every device's rows of `batches(split)` in calls of `batch` rows (the last call of a device zero-padded)."""
    size = int(export_shape["batch"])
    for batch in task.batches(split):
        per_row = max(len(batch.inputs[0]) // max(batch.rows, 1), 1)
        inputs = [_as_program_array(x) for x in batch.inputs]
        targets = None if batch.targets is None else np.asarray(
            batch.targets.detach().cpu().numpy() if isinstance(batch.targets, torch.Tensor) else batch.targets)
        for row, device in enumerate(batch.devices):
            for start in range(row * per_row, (row + 1) * per_row, size):
                stop = min(start + size, (row + 1) * per_row)
                chunk = tuple(_padded(x[start:stop], size) for x in inputs)
                yield int(device), chunk, CallTargets(None if targets is None else targets[start:stop], stop - start)


def _padded(rows: np.ndarray, size: int) -> np.ndarray:
    if len(rows) == size:
        return np.ascontiguousarray(rows)
    out = np.zeros((size, *rows.shape[1:]), rows.dtype)
    out[: len(rows)] = rows
    return out


def metrics_of_calls(task: "Task", calls: Sequence[tuple[int, CallTargets, np.ndarray]]) -> dict[str, float]:
    """The task's metrics from (device, CallTargets, program output) of every call: padding rows left out."""
    outputs = np.concatenate([np.asarray(output)[: targets.rows] for _, targets, output in calls])
    devices = np.concatenate([np.full(targets.rows, device) for device, targets, _ in calls])
    if all(targets.targets is None for _, targets, _ in calls):
        joined = None
    else:
        joined = np.concatenate([np.asarray(targets.targets) for _, targets, _ in calls])
    return {k: float(v) for k, v in task.metrics(outputs, joined, devices).items()}
