"""The device-model contract every exporter reads: fixed-shape inputs, then the slots, one output."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from toolkit.protocol.slots import SlotSpec, TensorSpec

class DeviceModel(nn.Module):
    """A compressed-backbone program: forward(*inputs, *slots) -> output, with its specs.

    Subclasses set `input_specs`, `slot_specs` and `output_spec` and implement `forward`; everything
    downstream (exporters, manifest, service, apps) reads these specs and nothing else.
    """

    input_specs: list[TensorSpec]
    slot_specs: list[SlotSpec]
    output_spec: TensorSpec

    def example_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Valid random non-slot inputs of the declared shapes."""
        raise NotImplementedError

    def for_export(self) -> nn.Module:
        """A copy of this program that the exporters convert: the same function of the same inputs, slots and weights,
        possibly written in a form the runtimes run faster (the parity checks compare it with this model).
        Default: a plain copy."""
        return copy.deepcopy(self).eval()

    def slot_tensors(self, slots: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
        """Slots in spec order as fp32 tensors (the tail of forward's arguments)."""
        return tuple(torch.as_tensor(np.asarray(slots[s.name], dtype=np.float32)) for s in self.slot_specs)

    def run(self, inputs: tuple[torch.Tensor, ...], slots: dict[str, np.ndarray]) -> np.ndarray:
        """Eager PyTorch reference output for one call."""
        with torch.no_grad():
            return self(*inputs, *self.slot_tensors(slots)).numpy()
