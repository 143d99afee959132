"""A split's samples as a device meets them: one per row, each device's in time order, each with its own context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toolkit.errors import TaskError
from toolkit.model.context import Samples
from toolkit.tasks.base import Batch, Task


@dataclass
class Stream:
    """Every row of `task.stream(split)` at once: the model's inputs, targets and devices, each row's context (its
    device's samples just before it) and its position in its device's stream (0 = the split's first sample)."""

    inputs: tuple[torch.Tensor, ...]
    targets: Any  # tensor or array (one entry per row), or None
    devices: np.ndarray  # (N,)
    positions: np.ndarray  # (N,)
    context: Samples  # N rows

    @property
    def rows(self) -> int:
        return len(self.devices)

    @classmethod
    def of(cls, task: Task, split: str, device: int | None = None) -> "Stream":
        batches = list(task.stream(split, device=device))
        if not batches:
            raise TaskError(f"{type(task).__name__}.stream({split!r}) gave no samples")
        for batch in batches:
            if batch.context is None or batch.context.rows != batch.rows:
                raise TaskError(f"{type(task).__name__}.stream({split!r}) must give every row its own context")
        devices = np.concatenate([np.asarray(b.devices) for b in batches])
        try:
            inputs = tuple(torch.cat(parts) for parts in zip(*(b.inputs for b in batches)))
            fields = {name: torch.cat([b.context.fields[name] for b in batches]) for name in batches[0].context.fields}
        except RuntimeError as err:
            raise TaskError(f"{type(task).__name__}.stream({split!r}): batches whose inputs or contexts differ in shape "
                            f"beyond their rows ({err})") from err
        if any(len(x) != len(devices) for x in inputs):
            raise TaskError(f"{type(task).__name__}.stream({split!r}) must give one sample per row")
        mask = torch.cat([b.context.mask for b in batches])
        return cls(inputs, _joined([b.targets for b in batches]), devices, positions_in_device(devices),
                   Samples(fields, mask))

    def rows_of(self, index: np.ndarray) -> Batch:
        """These rows (indices into the stream) as a Batch with their contexts."""
        chosen = torch.from_numpy(np.asarray(index, dtype=np.int64))
        targets = None if self.targets is None else self.targets[index if isinstance(self.targets, np.ndarray)
                                                                 else chosen]
        return Batch(tuple(x[chosen] for x in self.inputs), targets, self.devices[index],
                     Samples({k: v[chosen] for k, v in self.context.fields.items()}, self.context.mask[chosen]))


def positions_in_device(devices: np.ndarray) -> np.ndarray:
    """Each row's index among the rows of its device, in row order."""
    order = np.argsort(devices, kind="stable")
    ordered = devices[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    first = np.repeat(starts, np.diff(np.concatenate([starts, [len(devices)]])))
    positions = np.empty(len(devices), dtype=np.int64)
    positions[order] = np.arange(len(devices)) - first
    return positions


def _joined(parts: list[Any]) -> Any:
    if any(p is None for p in parts):
        return None
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)
    return np.concatenate([np.asarray(p) for p in parts])
