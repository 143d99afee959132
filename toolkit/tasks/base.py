"""The task contract: what a task (its data and model code) gives the task-agnostic trainer, evaluator, service
and exporters, split by concern into small protocols; `Task` is all of them.

    TaskSetup       name, config (saved in config.json and rebuilt), a fresh model, defaults
    TaskTraining    training batches, their loss, validation metrics, a device's context
    TaskEvaluation  test devices and scores, metrics, the most-shifted devices, the fine-tuning baseline's hooks
    TaskWire        the generate request: its JSON Schema, its validation into tensors, an example
    TaskProgram     the exportable device program, its fixed shapes, and scoring a split through it
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from toolkit.export.program import DeviceModel
from toolkit.tasks.model_base import TaskModel


@dataclass
class DeviceContext:
    """A batch of devices' unlabeled samples, turned into the generator's input."""

    vectors: torch.Tensor  # (B, M, context_dim)
    mask: torch.Tensor  # (B, M) bool, True where a sample is present


def torch_device_of(model: nn.Module) -> torch.device:
    """The torch device a model's parameters live on: where a task puts the tensors it builds for that model."""
    return next(model.parameters()).device


class TaskSetup(ABC):
    """What a task is and how it is rebuilt: its name, its config, a fresh model, its training defaults."""

    name: str  # registry key (toolkit.registry.TASKS), e.g. "recommendation"
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
    def config_json(self) -> dict:
        """Everything needed to rebuild this task (data source, protocol, model sizes)."""

    @abstractmethod
    def build_model(self) -> TaskModel:
        """A freshly initialised cloud model (its backbone from toolkit.registry.BACKBONES)."""

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


class TaskTraining(ABC):
    """What the trainer (toolkit.training.train) needs: batches, their loss, validation metrics, device contexts."""

    @abstractmethod
    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[Any]:
        """One epoch of shuffled training batches (opaque to the trainer)."""

    @abstractmethod
    def batch_loss(self, model: TaskModel, batch: Any, generator: nn.Module | None) -> torch.Tensor:
        """Training loss of a batch; with a generator, each sample uses slots generated from its context.

        It is the mean over the batch's rows (`batch_rows`), each of equal weight: data-parallel training weights
        each process's shard by its rows, so that the shards' weighted losses sum to the whole batch's."""

    def batch_rows(self, batch: Any) -> int:
        """Rows of a training batch. Default: the leading length of a dataclass batch's array fields."""
        return len(getattr(batch, _row_fields(batch)[0]))

    def batch_slice(self, batch: Any, start: int, stop: int) -> Any:
        """Rows [start, stop) of a training batch, as a batch (a data-parallel process's shard of it). Default: every
        array field of a dataclass batch sliced along its first axis (override for batches of another form)."""
        return replace(batch, **{name: getattr(batch, name)[start:stop] for name in _row_fields(batch)})

    @abstractmethod
    def evaluate(self, model: TaskModel, split: str, generator: nn.Module | None) -> dict[str, float]:
        """Metrics on a split ("val" or "test"); with a generator, each device's slots are generated once."""

    @abstractmethod
    def device_context(self, model: TaskModel, device: int, split: str) -> DeviceContext:
        """Context (batch of 1) of a device as it stands when `split` begins."""


def _row_fields(batch: Any) -> list[str]:
    """The fields of a dataclass batch, each an array or tensor with one entry per row (the same number in each)."""
    if not is_dataclass(batch) or not fields(batch):
        raise TypeError(f"a {type(batch).__name__} batch is not a dataclass of arrays: its task must define "
                        f"batch_rows and batch_slice")
    names = [f.name for f in fields(batch)]
    lengths = {name: len(getattr(batch, name)) for name in names}
    if len(set(lengths.values())) != 1:
        raise TypeError(f"the fields of a {type(batch).__name__} batch differ in rows ({lengths}): its task must "
                        f"define batch_rows and batch_slice")
    return names


class TaskEvaluation(ABC):
    """What the evaluator (toolkit.evaluation.evaluate) needs: test devices and scores, metrics, and the fine-tuning baseline's
    hooks (the loop itself is written once, in toolkit.evaluation.evaluate.finetune_and_score)."""

    @abstractmethod
    def device_ids(self, split: str) -> np.ndarray:
        """The devices scored on a split."""

    @abstractmethod
    def test_scores(self, model: TaskModel, generator: nn.Module | None) -> dict[int, Any]:
        """Per-device test scores of Base (no generator) or DUET."""

    @abstractmethod
    def metrics_from_scores(self, scores: Mapping[int, Any], devices: np.ndarray | None = None) -> dict[str, float]:
        """Metrics from per-device test scores (all devices, or the subset `devices`)."""

    @abstractmethod
    def shifted_devices(self, fraction: float) -> np.ndarray:
        """The `fraction` of test devices whose test data differs most from their training data."""

    @abstractmethod
    def finetune_defaults(self) -> dict[str, Any]:
        """Default fine-tuning settings of the baseline: lr, epochs, batch_size."""

    @abstractmethod
    def finetune_batches(self, device: int, settings: Mapping[str, Any]) -> Iterator[Any]:
        """Every step's batch of one device's labeled data, `settings["epochs"]` times over, in the task's own seeded
        order (`settings["seed"]`, `settings["batch_size"]`); consumed lazily by the fine-tuning loop."""

    @abstractmethod
    def finetune_loss(self, model: TaskModel, batch: Any) -> torch.Tensor:
        """The loss of one fine-tuning batch (labels in the batch; no generator)."""

    @abstractmethod
    def device_test_scores(self, model: TaskModel, device: int) -> Any:
        """One device's test scores (as in `test_scores`) by a model of its own (the fine-tuned copy)."""


class TaskWire(ABC):
    """What the service (toolkit.service) needs of a generate request."""

    @abstractmethod
    def request_schema(self) -> dict:
        """JSON Schema of one generate-request body, for the service's OpenAPI document."""

    @abstractmethod
    def request_inputs(self, payloads: list[Mapping[str, Any]]) -> tuple[torch.Tensor, ...]:
        """Generate-request bodies, validated -> the batch's raw context tensors (`TaskModel.context`'s inputs);
        bad input raises RequestError naming what is wrong."""

    @abstractmethod
    def example_request(self, device: int) -> dict:
        """A valid generate-request body for a device of the test split."""

    def request_context(self, model: TaskModel, payloads: list[Mapping[str, Any]]) -> DeviceContext:
        """Validated generate-request bodies -> a batch of contexts; bad input raises RequestError."""
        inputs = self.request_inputs(payloads)
        with torch.no_grad():
            return DeviceContext(*model.context(*inputs))


class TaskProgram(ABC):
    """What the exporters' harness (toolkit.export.transaction) needs: the device program and how to score through it."""

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


class Task(TaskSetup, TaskTraining, TaskEvaluation, TaskWire, TaskProgram):
    """A task: its data, its model, its samples on the wire, its device program. Everything outside a task's
    module is generic; a new task is its module plus one line in toolkit.registry.TASKS."""


__all__ = ["DeviceContext", "Task", "TaskEvaluation", "TaskModel", "TaskProgram", "TaskSetup", "TaskTraining",
           "TaskWire", "torch_device_of"]
