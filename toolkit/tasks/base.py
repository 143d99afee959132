"""The task contract: what a task (its data and model code) gives the task-agnostic trainer, evaluator and service."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from toolkit.device import DeviceModel
from toolkit.slots import SlotSpec


@dataclass
class DeviceContext:
    """A batch of devices' unlabeled samples, turned into the generator's input."""

    vectors: torch.Tensor  # (B, M, context_dim)
    mask: torch.Tensor  # (B, M) bool, True where a sample is present


class TaskModel(nn.Module, ABC):
    """A task's cloud model: static layers, a Base slot head (`head`), and a context encoder for the generator."""

    head: nn.Module  # SlotHead: the Base parameters of the slots

    @property
    @abstractmethod
    def context_dim(self) -> int:
        """Size of each context vector the generator reads."""

    @property
    def slot_specs(self) -> list[SlotSpec]:
        return self.head.shape.slot_specs()

    @abstractmethod
    def context(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The tensors `Task.request_inputs` builds -> (context vectors (B, M, context_dim), mask (B, M)).

        Plain tensor ops only: the service traces it together with the generator into one program.
        """

    def context_table(self) -> torch.Tensor | None:
        """Optional, with `context_parts`: a table (V, t) whose rows begin every context vector. The service then
        folds the generator's first layer into it once, so a request gathers a narrow row per sample instead of
        building the vector and multiplying it. None (the default): the vectors are not of that form."""
        return None

    def context_parts(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(row ids (B, M), the rest of each vector (B, M, context_dim - t), mask (B, M)) such that `context(*inputs)`
        is (cat([context_table()[ids], rest], -1), mask). Needed only when `context_table` is not None."""
        raise NotImplementedError(f"{type(self).__name__} has no context table")


class Task(ABC):
    """A task: its data, its model, its samples on the wire. Everything outside a task's module is generic."""

    name: str  # registry key, e.g. "recommendation"
    metric_names: tuple[str, ...]  # keys of each method's object in metrics.json
    selection_metric: str  # validation metric that early stopping maximises

    @classmethod
    @abstractmethod
    def from_config_json(cls, obj: Mapping[str, Any], cache_dir: Any = None) -> "Task":
        """Rebuild the task from the `task_config` saved in a run's config.json."""

    @classmethod
    @abstractmethod
    def from_options(cls, options: Mapping[str, Any], cache_dir: Any = None) -> "Task":
        """A new task from `cli.py train`'s options (by their parameter names; it reads the ones it has)."""

    @abstractmethod
    def build_model(self) -> TaskModel:
        """A freshly initialised cloud model."""

    @staticmethod
    def base_signature_of(config_json: Mapping[str, Any]) -> dict[str, Any]:
        """The part of a saved task config that the Base model depends on (data and architecture)."""
        return dict(config_json)

    def train_defaults(self) -> dict[str, Any]:
        """TrainConfig fields this task trains best with (chosen on its validation split)."""
        return {}

    def generator_defaults(self) -> dict[str, Any]:
        """GeneratorConfig fields this task's generator is built with unless the user sets them."""
        return {}

    @abstractmethod
    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[Any]:
        """One epoch of shuffled training batches (opaque to the trainer)."""

    @abstractmethod
    def batch_loss(self, model: TaskModel, batch: Any, generator: nn.Module | None) -> torch.Tensor:
        """Training loss of a batch; with a generator, each sample uses slots generated from its context."""

    @abstractmethod
    def evaluate(self, model: TaskModel, split: str, generator: nn.Module | None) -> dict[str, float]:
        """Metrics on a split ("val" or "test"); with a generator, each device's slots are generated once."""

    @abstractmethod
    def device_ids(self, split: str) -> np.ndarray:
        """The devices scored on a split."""

    @abstractmethod
    def finetune_defaults(self) -> dict[str, Any]:
        """Default fine-tuning settings of the baseline: lr, epochs, batch_size."""

    @abstractmethod
    def finetune_and_score(self, model: TaskModel, device: int, settings: Mapping[str, Any]) -> tuple[Any, float]:
        """Fine-tune a copy of `model` on one device's labeled training data; (test scores, seconds spent)."""

    @abstractmethod
    def metrics_from_scores(self, scores: Mapping[int, Any], devices: np.ndarray | None = None) -> dict[str, float]:
        """Metrics from per-device test scores (all devices, or the subset `devices`)."""

    @abstractmethod
    def test_scores(self, model: TaskModel, generator: nn.Module | None) -> dict[int, Any]:
        """Per-device test scores of Base (no generator) or DUET."""

    @abstractmethod
    def shifted_devices(self, fraction: float) -> np.ndarray:
        """The `fraction` of test devices whose test data differs most from their training data."""

    @abstractmethod
    def device_context(self, model: TaskModel, device: int, split: str) -> DeviceContext:
        """Context (batch of 1) of a device as it stands when `split` begins."""

    # -- the wire and the device program --------------------------------------------------------------
    @abstractmethod
    def request_inputs(self, payloads: list[Mapping[str, Any]]) -> tuple[torch.Tensor, ...]:
        """Generate-request bodies, validated -> the batch's raw context tensors (`TaskModel.context`'s inputs);
        bad input raises RequestError naming what is wrong."""

    def request_context(self, model: TaskModel, payloads: list[Mapping[str, Any]]) -> DeviceContext:
        """Validated generate-request bodies -> a batch of contexts; bad input raises RequestError."""
        inputs = self.request_inputs(payloads)
        with torch.no_grad():
            return DeviceContext(*model.context(*inputs))

    @abstractmethod
    def request_schema(self) -> dict:
        """JSON Schema of one generate-request body, for the service's OpenAPI document."""

    @abstractmethod
    def example_request(self, device: int) -> dict:
        """A valid generate-request body for a device of the test split."""

    @abstractmethod
    def device_model(self, model: TaskModel, export_shape: Mapping[str, int]) -> DeviceModel:
        """The exportable program: static layers with the slots as inputs, at fixed shapes."""

    @abstractmethod
    def export_shape_defaults(self) -> dict[str, int]:
        """Default fixed shapes of an export, e.g. {"seq_len": 30, "candidates": 100}."""

    @abstractmethod
    def device_eval_calls(self, split: str, export_shape: Mapping[str, int]) -> Iterator[tuple[int, tuple, Any]]:
        """(device, program inputs as numpy, labels) for every call needed to score a split on the device."""

    @abstractmethod
    def metrics_from_device_calls(self, calls: list[tuple[int, Any, np.ndarray]]) -> dict[str, float]:
        """Metrics from (device, labels, program output) of every call of `device_eval_calls`."""

    @abstractmethod
    def config_json(self) -> dict:
        """Everything needed to rebuild this task (data source, protocol, model sizes)."""
