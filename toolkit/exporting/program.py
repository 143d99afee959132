"""The device program every exporter converts: a personalised model called with its slots as run-time inputs.

`DeviceModel` is the contract the exporters read (fixed-shape inputs, then the slots, one output, and example inputs);
`DeviceProgram` is that contract for any task's model: forward(*inputs, *slots) binds the slots
(toolkit.model.slots.bound_slots) and calls the model, so the exporters, the manifest, the service and the apps need
no knowledge of the task.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from toolkit.errors import ConfigError, one_line
from toolkit.model.slots import bound_slots, slot_specs
from toolkit.protocol.slots import SlotSpec, TensorSpec

if TYPE_CHECKING:
    from toolkit.tasks.base import Task

EXAMPLE_CALLS = 64  # a program keeps this many of the task's real test calls (or random ones) as example inputs


@dataclass(frozen=True)
class ExampleInput:
    """A program input of a model exported without data, and the range its random example values are drawn from."""

    spec: TensorSpec  # name, fixed shape and dtype ("float32" or "int32")
    low: float = 0.0  # floats: uniform in [low, high); integers: uniform in [low, high]
    high: float = 1.0

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        if self.spec.dtype == "int32":
            return rng.integers(int(self.low), int(self.high) + 1, self.spec.shape).astype(np.int32)
        return rng.uniform(self.low, self.high, self.spec.shape).astype(np.float32)


class DeviceModel(nn.Module):
    """A compressed-backbone program: forward(*inputs, *slots) -> output, with its specs.

    Subclasses set `input_specs`, `slot_specs` and `output_spec` and implement `forward` and `example_inputs`;
    everything downstream (exporters, manifest, service, apps) reads these specs and nothing else.
    """

    input_specs: list[TensorSpec]
    slot_specs: list[SlotSpec]
    output_spec: TensorSpec

    def example_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Valid non-slot inputs of the declared shapes (different ones for different seeds)."""
        raise NotImplementedError

    def for_export(self) -> nn.Module:
        """A copy of this program that the exporters convert: the same function of the same inputs, slots and weights,
        possibly written in a form the runtimes run faster (the parity checks compare it with this model).
        Default: a plain copy."""
        return copy.deepcopy(self).eval()

    def slot_tensors(self, slots: Mapping[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
        """Slots in spec order as fp32 tensors (the tail of forward's arguments)."""
        return tuple(torch.as_tensor(np.asarray(slots[s.name], dtype=np.float32)) for s in self.slot_specs)

    def run(self, inputs: tuple[torch.Tensor, ...], slots: Mapping[str, np.ndarray]) -> np.ndarray:
        """Eager PyTorch reference output for one call."""
        with torch.no_grad():
            return self(*inputs, *self.slot_tensors(slots)).numpy()


class DeviceProgram(DeviceModel):
    """A task's personalised model as a device program, at the export's fixed shapes; its example inputs are the
    task's real test calls."""

    def __init__(self, model: nn.Module, input_specs: list[TensorSpec], output_spec: TensorSpec,
                 examples: list[tuple[np.ndarray, ...]], fast_form: nn.Module | None = None):
        super().__init__()
        self.model = model.eval()
        self.fast_form = fast_form  # the same function written for the runtimes (shares the model's modules)
        self.use_fast_form = False
        self.input_specs, self.output_spec = list(input_specs), output_spec
        self.slot_specs = slot_specs(model)
        self.examples = examples

    @classmethod
    def of(cls, task: "Task", model: nn.Module, export_shape: Mapping[str, int]) -> "DeviceProgram":
        """The program of `task`'s model (copied, eval mode) at `export_shape`."""
        model = copy.deepcopy(model).eval()
        inputs, output = task.program_specs(model, export_shape)
        examples = [call for _, call, _ in islice(task.program_calls("test", export_shape), EXAMPLE_CALLS)]
        fast = task.export_form(model)
        return cls(model, inputs, output, examples, None if fast is model else fast)

    @classmethod
    def from_specs(cls, model: nn.Module, inputs: Sequence[ExampleInput], output_name: str = "output",
                   fast_form=None) -> "DeviceProgram":
        """The program of a personalised model exported without a task: the given inputs, random example calls, the
        output as the model computes it; `fast_form(model)`, when given, makes the form the runtimes convert."""
        model = copy.deepcopy(model).eval()
        rng = np.random.default_rng(0)
        examples = [tuple(example.draw(rng) for example in inputs) for _ in range(EXAMPLE_CALLS)]
        try:
            with torch.no_grad():
                output = model(*(torch.from_numpy(a) for a in examples[0]))
        except Exception as err:  # whatever the user's forward raises on these inputs
            given = ", ".join(f"{e.spec.name}={list(e.spec.shape)} ({e.spec.dtype})" for e in inputs)
            raise ConfigError(f"the model does not run on the inputs {given}: {type(err).__name__}: "
                              f"{one_line(err)}") from err
        if not isinstance(output, torch.Tensor):
            raise ConfigError(f"the model returns a {type(output).__name__}; a device program has one tensor output")
        return cls(model, [example.spec for example in inputs], TensorSpec(output_name, tuple(output.shape), "float32"),
                   examples, fast_form(model) if fast_form is not None else None)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        count = len(self.input_specs)
        runner = self.fast_form if self.use_fast_form and self.fast_form is not None else self.model
        with bound_slots(self.model, args[count:]):
            return runner(*args[:count])

    def example_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        if not self.examples:
            raise ValueError("the task's test split has no call to take example inputs from")
        return tuple(torch.from_numpy(np.array(a)) for a in self.examples[seed % len(self.examples)])

    def for_export(self) -> nn.Module:
        program = copy.deepcopy(self).eval()
        program.use_fast_form = True
        return program
