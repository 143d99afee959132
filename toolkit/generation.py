"""Slot generation for devices: the generator's output as named numpy arrays, in the slot spec's order."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch
from torch import nn

from toolkit.runs import Run
from toolkit.tasks.base import DeviceContext

logger = logging.getLogger(__name__)


class _WithBase(nn.Module):
    """The generator with the Base slots folded in: (vectors, mask) -> slot tensors."""

    def __init__(self, generator: nn.Module, base: list[torch.Tensor]):
        super().__init__()
        self.generator = generator
        self.base = nn.ParameterList([nn.Parameter(b.detach().clone(), requires_grad=False) for b in base])

    def forward(self, vectors: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.generator(vectors, mask, list(self.base)))


def serving_generator(run: Run) -> nn.Module:
    """The generator as served and timed: traced and frozen with TorchScript (half the per-call overhead of
    eager PyTorch at batch 1), checked against eager on other batch and context sizes; eager if that fails."""
    if run.serving is not None:
        return run.serving
    eager = _WithBase(run.generator, list(run.duet.head.params)).eval()
    dim = run.generator.cfg.context_dim
    generator = torch.Generator().manual_seed(0)

    def example(batch: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        mask = torch.ones(batch, length, dtype=torch.bool)
        mask[0, : length // 2] = False
        return torch.randn(batch, length, dim, generator=generator), mask

    chosen: nn.Module = eager
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.freeze(torch.jit.trace(eager, example(2, 7), check_trace=False))
            for batch, length in ((1, 7), (3, 5), (1, 11)):
                inputs = example(batch, length)
                if not all(torch.allclose(a, b, atol=1e-5) for a, b in zip(traced(*inputs), eager(*inputs))):
                    raise ValueError(f"traced generator differs from eager at batch {batch}, length {length}")
        chosen = traced
    except (RuntimeError, ValueError) as err:  # serve eager rather than fail
        logger.warning("serving the eager generator: tracing failed (%s)", err)
    run.serving = chosen
    return chosen


def generate_slot_batch(run: Run, context: DeviceContext) -> dict[str, np.ndarray]:
    """{slot name: fp32 array (B, *shape)} for the devices of the batch, in spec order."""
    with torch.inference_mode():
        params = serving_generator(run)(context.vectors, context.mask)
    return {spec.name: np.asarray(p.numpy(), dtype=np.float32) for spec, p in zip(run.duet.slot_specs, params)}


def generate_slots(run: Run, context: DeviceContext) -> list[dict[str, np.ndarray]]:
    """One {slot name: fp32 array} per device of the batch (views into one batch array per slot)."""
    batch = generate_slot_batch(run, context)
    return [{name: values[row] for name, values in batch.items()} for row in range(context.vectors.shape[0])]


def slots_for_device(run: Run, device: int, split: str = "test") -> dict[str, np.ndarray]:
    """Slots generated from one device's data as it stands when `split` begins."""
    return generate_slots(run, run.task.device_context(run.duet, device, split))[0]
