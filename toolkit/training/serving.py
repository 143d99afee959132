"""Serving a run: its generator and context encoder traced into the programs that write device slots (ServingPrograms)."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.model.slots import base_slots, slot_specs
from toolkit.tasks.base import DeviceContext, Samples, Task
from toolkit.training.runs import Run

logger = logging.getLogger(__name__)


class _WithBase(nn.Module):
    """The generator with the Base slots folded in: (vectors, mask) -> slot tensors."""

    def __init__(self, generator: nn.Module, base: list[torch.Tensor]):
        super().__init__()
        self.generator = generator
        self.base = nn.ParameterList([nn.Parameter(b.detach().clone(), requires_grad=False) for b in base])

    def forward(self, vectors: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.generator(vectors, mask, list(self.base)))


def _samples(task: Task, inputs: tuple[torch.Tensor, ...]) -> Samples:
    """`task.request_inputs`'s tensors (each field, then the mask) as Samples."""
    names = [spec.name for spec in task.context_specs()]
    return Samples(dict(zip(names, inputs[:-1])), inputs[-1])


class _FromRequests(nn.Module):
    """The task's context vectors of the model, then the generator: the request's raw tensors -> slot tensors."""

    def __init__(self, task: Task, model: nn.Module, with_base: _WithBase):
        super().__init__()
        self.task, self.model, self.with_base = task, model, with_base

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        samples = _samples(self.task, inputs)
        return self.with_base(self.task.context_vectors(self.model, samples), samples.mask)


class _FoldedFromRequests(nn.Module):
    """`_FromRequests` for a task model whose context vectors start with a row of a table (`context_table`,
    `context_parts`): the generator's first per-sample layer is folded into that table once,
    first(cat([table[ids], rest])) = (table W_t^T + b)[ids] + rest W_r^T, so a request gathers one narrow row per
    sample instead of building the vector and multiplying it (the same function, checked at start-up)."""

    def __init__(self, task: Task, model: nn.Module, with_base: _WithBase):
        super().__init__()
        self.task, self.model, self.with_base = task, model, with_base
        first = with_base.generator.first_layer
        with torch.no_grad():
            table = task.context_table(model)
            width = table.shape[1]
            self.table = nn.Parameter(table @ first.weight[:, :width].t() + first.bias, requires_grad=False)
            self.rest_weight = nn.Parameter(first.weight[:, width:].t().contiguous(), requires_grad=False)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        samples = _samples(self.task, inputs)
        ids, rest = self.task.context_parts(self.model, samples)
        mask = samples.mask
        first = F.embedding(ids, self.table)
        if self.rest_weight.shape[0]:  # known when traced: the model's context has features beyond the table row
            first = first + rest @ self.rest_weight
        return tuple(self.with_base.generator.from_first_layer(first, mask, list(self.with_base.base)))


def _traced(eager: nn.Module, example: tuple, checks: list[tuple], what: str,
            reference: nn.Module | None = None) -> nn.Module:
    """`eager` traced on `example` and frozen with TorchScript (half the per-call overhead of eager PyTorch at
    batch 1), if it equals `reference` (default: eager itself) on every input of `checks` (other batch and
    context sizes); otherwise `reference`, the function that is known to be right."""
    reference = eager if reference is None else reference
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.freeze(torch.jit.trace(eager, example, check_trace=False))
            for inputs in checks:
                if not all(torch.allclose(a, b, atol=1e-5) for a, b in zip(traced(*inputs), reference(*inputs))):
                    shapes = [list(t.shape) for t in inputs]
                    raise ValueError(f"traced {what} differs from eager on inputs of shapes {shapes}")
        return traced
    except (RuntimeError, ValueError) as err:  # serve eager rather than fail
        logger.warning("serving the eager %s: tracing failed (%s)", what, err)
        return reference


SLOT_BOUND_MARGIN = 4.0  # a device accepts slot values up to this many times the largest seen before export
BOUND_DEVICES = 256  # devices whose generated slots set the bounds
MIN_BOUND = 1e-6  # the bound of a slot that was all zeros


def bounds_from_largest(largest: dict[str, float]) -> dict[str, float]:
    """The manifest's `max_abs` per slot from the largest |value| seen before export: SLOT_BOUND_MARGIN times it."""
    return {name: max(SLOT_BOUND_MARGIN * value, MIN_BOUND) for name, value in largest.items()}


class ServingPrograms:
    """The traced programs one run is served with, built on first use and kept by whoever serves it (the service's
    state, an evaluation, an export's measurement): the run record holds no serving state."""

    def __init__(self, run: Run):
        self.run = run
        self.slot_specs = slot_specs(run.duet)  # fixed once personalised: read on every request batch
        self._generator: nn.Module | None = None
        self._pipeline: nn.Module | None = None

    @property
    def generator(self) -> nn.Module:
        """The generator as timed by `evaluate`: (context vectors, mask) -> slot tensors, traced (see `_traced`)."""
        if self._generator is None:
            run = self.run
            eager = _WithBase(run.generator, base_slots(run.duet)).eval()
            dim, device = run.generator.cfg.context_dim, run.generator.first_layer.weight.device
            generator = torch.Generator().manual_seed(0)

            def example(batch: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
                mask = torch.ones(batch, length, dtype=torch.bool)
                mask[0, : length // 2] = False
                return torch.randn(batch, length, dim, generator=generator).to(device), mask.to(device)

            self._generator = _traced(eager, example(2, 7), [example(1, 7), example(3, 5), example(1, 11)],
                                      "generator")
        return self._generator

    @property
    def pipeline(self) -> nn.Module:
        """What the service runs per batch: the raw tensors of `task.request_inputs` -> slot tensors, the task
        model's context encoder and the generator traced as ONE program (no Python between their ops; with the
        generator's first layer folded into the model's context table when it has one), checked against the eager
        model and generator on example requests of the run's test devices."""
        if self._pipeline is None:
            run = self.run
            with_base = _WithBase(run.generator, base_slots(run.duet))
            eager = _FromRequests(run.task, run.duet, with_base).eval()
            program = eager
            if run.task.context_table(run.duet) is not None:
                program = _FoldedFromRequests(run.task, run.duet, with_base).eval()
            devices = [int(d) for d in run.task.devices("test")[:6]]
            bodies = [run.task.example_request(d) for d in devices]
            if bodies:  # other batch sizes and context lengths than the traced example's
                example = run.task.request_inputs(bodies[:2])
                checks = [run.task.request_inputs(group) for group in (bodies[2:3], bodies[3:6], bodies[:1]) if group]
                self._pipeline = _traced(program, example, checks, "request pipeline", reference=eager)
            else:  # no test device to trace on
                self._pipeline = eager
        return self._pipeline

    def _slot_arrays(self, params: tuple[torch.Tensor, ...]) -> dict[str, np.ndarray]:
        return {spec.name: np.asarray(p.cpu().numpy(), dtype=np.float32)
                for spec, p in zip(self.slot_specs, params)}

    def slot_batch(self, context: DeviceContext) -> dict[str, np.ndarray]:
        """{slot name: fp32 array (B, *shape)} for the devices of the batch, in spec order."""
        with torch.inference_mode():
            return self._slot_arrays(self.generator(context.vectors, context.mask))

    def request_slot_batch(self, inputs: tuple[torch.Tensor, ...]) -> dict[str, np.ndarray]:
        """{slot name: fp32 array (B, *shape)} from the raw tensors of `run.task.request_inputs`, in spec order."""
        with torch.inference_mode():
            return self._slot_arrays(self.pipeline(*inputs))

    def slots(self, context: DeviceContext) -> list[dict[str, np.ndarray]]:
        """One {slot name: fp32 array} per device of the batch (views into one batch array per slot)."""
        batch = self.slot_batch(context)
        return [{name: values[row] for name, values in batch.items()} for row in range(context.vectors.shape[0])]

    def slots_for_device(self, device: int, split: str = "test") -> dict[str, np.ndarray]:
        """Slots generated from one device's data as it stands when `split` begins."""
        return self.slots(self.run.task.device_context(self.run.duet, device, split))[0]

    def slot_bounds(self, split: str = "val", max_devices: int = BOUND_DEVICES) -> dict[str, float]:
        """Per slot, the largest |value| a device should accept (the manifest's `max_abs`): the largest over Base's
        slots and the slots generated for up to `max_devices` devices of `split`, times SLOT_BOUND_MARGIN."""
        largest = {s.name: float(p.detach().abs().max()) for s, p in zip(self.slot_specs, base_slots(self.run.duet))}
        for device in self.run.task.devices(split)[:max_devices]:
            for name, values in self.slots_for_device(int(device), split).items():
                largest[name] = max(largest[name], float(np.abs(values).max()))
        return bounds_from_largest(largest)

