"""The loops every task shares, written once on the task contract: a batch's outputs with generated slots, its loss,
a split's outputs and metrics (Base, or DUET with each device's slots generated once when the split begins), and the
fine-tuning baseline."""

from __future__ import annotations

import copy
import itertools
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from toolkit.model.slots import base_slots, bound_slots
from toolkit.tasks.base import Batch, DeviceContext, Samples, Task, torch_device_of


def context_dim(task: Task, model: nn.Module) -> int:
    """Size of each context vector the task gives the generator for this model."""
    devices = task.devices("train")[:1]
    with torch.no_grad():
        return int(task.devices_context(model, devices, "train").vectors.shape[-1])


def generated_slots(model: nn.Module, generator: nn.Module, context: DeviceContext) -> list[torch.Tensor]:
    """One slot set per context row: the generator's output around the model's own (Base) slots."""
    return generator(context.vectors, context.mask, base_slots(model))


def generated_from(task: Task, model: nn.Module, generator: nn.Module, samples: Samples) -> list[torch.Tensor]:
    """One slot set per row of `samples` (raw context samples): their context vectors through the generator."""
    return generator(task.context_vectors(model, samples), samples.mask, base_slots(model))


def batch_outputs(task: Task, model: nn.Module, batch: Batch, generator: nn.Module | None,
                  split: str = "train") -> torch.Tensor:
    """model(*batch.inputs): with Base's slots, or, with a generator, each row with the slots generated from its
    context (the batch's own for training rows, else its device's as `split` begins)."""
    device = torch_device_of(model)
    inputs = tuple(x.to(device) for x in batch.inputs)
    if generator is None:
        return model(*inputs)
    samples = batch.context if batch.context is not None else task.context(batch.devices, split)
    samples = samples.to(device)
    with bound_slots(model, generated_from(task, model, generator, samples)):
        return model(*inputs)


def batch_loss(task: Task, model: nn.Module, batch: Batch, generator: nn.Module | None) -> torch.Tensor:
    """The training loss of a batch (mean over its rows, each of equal weight: data-parallel training weights each
    process's shard by its rows, so that the shards' weighted losses sum to the whole batch's)."""
    return task.loss(batch_outputs(task, model, batch, generator), batch)


@dataclass
class SplitOutputs:
    """A split's outputs, one entry per output row: what the task's metrics read."""

    outputs: np.ndarray
    targets: Any  # concatenated targets, or None
    devices: np.ndarray  # the device of each output row

    def metrics(self, task: Task, devices: np.ndarray | None = None) -> dict[str, float]:
        """The task's metrics on every row, or on the rows of `devices` only."""
        if devices is None:
            return task.metrics(self.outputs, self.targets, self.devices)
        keep = np.isin(self.devices, devices)
        targets = None if self.targets is None else self.targets[keep]
        return task.metrics(self.outputs[keep], targets, self.devices[keep])


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def collect(batches: list[tuple[Batch, torch.Tensor]]) -> SplitOutputs:
    """Concatenate (batch, outputs) pairs into one SplitOutputs."""
    outputs, targets, devices = [], [], []
    for batch, out in batches:
        out = _numpy(out)
        outputs.append(out)
        devices.append(np.repeat(np.asarray(batch.devices), len(out) // max(batch.rows, 1)))
        if batch.targets is not None:
            targets.append(_numpy(batch.targets))
    if not outputs:
        return SplitOutputs(np.zeros((0,), np.float32), None, np.zeros((0,), np.int64))
    return SplitOutputs(np.concatenate(outputs), np.concatenate(targets) if targets else None,
                        np.concatenate(devices))


def split_outputs(task: Task, model: nn.Module, split: str, generator: nn.Module | None) -> SplitOutputs:
    """Every output of a split: Base, or DUET with each device's slots generated once, from its context as the split
    begins (all devices' in one generator call), and bound row by row."""
    model.eval()
    if generator is not None:
        generator.eval()
    results = []
    with torch.no_grad():
        devices, generated = None, None
        if generator is not None:
            devices = np.unique(task.devices(split))  # sorted: each batch row finds its device's slots by search
            generated = generated_slots(model, generator, task.devices_context(model, devices, split))
        for batch in task.batches(split):
            inputs = tuple(x.to(torch_device_of(model)) for x in batch.inputs)
            if generated is None:
                results.append((batch, model(*inputs)))
                continue
            index = torch.from_numpy(np.searchsorted(devices, batch.devices)).to(torch_device_of(model))
            with bound_slots(model, [values[index] for values in generated]):
                results.append((batch, model(*inputs)))
    return collect(results)


def evaluate_split(task: Task, model: nn.Module, split: str, generator: nn.Module | None) -> dict[str, float]:
    """The task's metrics on a split ("val" or "test"): Base, or DUET with each device's slots generated once."""
    return split_outputs(task, model, split, generator).metrics(task)


def finetune_and_score(task: Task, model: nn.Module, device: int, settings: Mapping[str, Any]) -> tuple[SplitOutputs,
                                                                                                          float]:
    """The fine-tuning baseline, one loop for every task: a copy of `model` fine-tuned on the device's labeled samples
    before its test period (`finetuned_copy`); returns (its outputs on the device's test batches, seconds spent
    training, the copy included)."""
    tuned, seconds = finetuned_copy(task, model, device, settings)
    with torch.no_grad():
        outputs = collect([(batch, batch_outputs(task, tuned, batch, None)) for batch in task.batches("test",
                                                                                                     device=device)])
    return outputs, seconds


def finetuned_copy(task: Task, model: nn.Module, device: int, settings: Mapping[str, Any],
                   seen: int = 0) -> tuple[nn.Module, float]:
    """A copy of `model`, all of it trained with Adam on `task.finetune_batches(device, seen=seen)`, `settings["epochs"]`
    passes, its order and dropout seeded by (seed, device) (and `seen`, when it is not 0); returns (the copy in eval
    mode, seconds spent training, the copy included)."""
    key = [settings["seed"], device] + ([seen] if seen else [])
    rng = np.random.default_rng(key)
    batches = itertools.chain.from_iterable(
        task.finetune_batches(device, seen=seen, rng=rng, batch_size=settings["batch_size"])
        for _ in range(settings["epochs"]))
    first = next(batches, None)  # the task's own set-up (finding the device's data) is not fine-tuning time
    from toolkit.training.distributed import synchronize

    # dropout draws from torch's generator, which PyTorch seeds at random in each process: seeded here from (seed,
    # device), a device's baseline is the same in every run and alone
    torch.manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))
    started = time.perf_counter()
    tuned = copy.deepcopy(model)
    tuned.train()
    optimizer = torch.optim.Adam(tuned.parameters(), lr=settings["lr"])
    for batch in ([] if first is None else itertools.chain([first], batches)):
        loss = task.loss(batch_outputs(task, tuned, batch, None), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    synchronize(torch_device_of(tuned))
    seconds = time.perf_counter() - started
    tuned.eval()
    return tuned, seconds
