"""The task contract: what you implement to personalise your model on your data with DUET, and the defaults for the rest.

A task brings a data set of devices. Each device has recent unlabeled samples (what the generator reads to write its
slots) and labeled samples, split by time into the cloud's training data, validation and test. Six methods:

    build_model()                  your nn.Module, personalised: personalize(model, SlotConfig([...]))
    devices(split)                 the device ids of "train", "val" or "test"
    context(devices, split)        those devices' recent unlabeled samples when `split` begins (Samples)
    batches(split, device=, rng=, batch_size=)
                                   labeled Batches: model inputs, targets, each row's device (and its own context)
    loss(outputs, batch)           the training loss of model(*batch.inputs)
    metrics(outputs, targets, devices)
                                   the metrics of outputs, one row per output row

and one attribute, `selection_metric` (the metric early stopping maximises). Everything else has a default that a
task may override: saving and rebuilding the task (a dataclass task is saved as its fields), the context vectors (the
model's own features on the samples), the generate request's wire schema (from the samples' specs), the fine-tuning
baseline's settings and batches, the exported program's fixed shapes, the most-shifted devices, and for slots
refreshed during the test period (`evaluate --refresh-every`, `--refresh trigger`) each sample with its own context
(`stream`), the request trigger's features (`drift_features`) and confidences (`sample_confidence`). The trainer, the evaluator, the
fine-tuning baseline, the service and the exporters use only this contract; the built-in tasks implement it too.

Splits: "train" (the cloud's devices), "val" (early stopping), "test" (scored devices), and "finetune": a test
device's own labeled samples from before its test period, which only the fine-tuning baseline trains on.
"""

from __future__ import annotations

import dataclasses
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from toolkit.model.context import Samples
from toolkit.protocol.slots import TensorSpec

SPLITS = ("train", "val", "test", "finetune")


@dataclass
class Batch:
    """Labeled samples the model is called on: `model(*inputs)`. A row is one set of slots (one device, or one
    training sample with its own context); each input's leading size is `rows` times the same factor Q (a device's
    Q samples, consecutive), and so are the outputs and `targets`."""

    inputs: tuple[torch.Tensor, ...]  # the model's arguments
    targets: Any  # what loss and metrics compare the outputs with (array or tensor, per output row), or None
    devices: np.ndarray  # (rows,) the device of each row
    context: Samples | None = None  # each row's own unlabeled context (training rows), else its device's

    @property
    def rows(self) -> int:
        return len(self.devices)

    def slice(self, start: int, stop: int) -> "Batch":
        """Rows [start, stop): a data-parallel process's shard of the batch."""
        rows = max(self.rows, 1)

        def cut(value):
            if value is None:
                return None
            per_row = len(value) // rows
            return value[start * per_row : stop * per_row]

        return Batch(tuple(cut(x) for x in self.inputs), cut(self.targets), self.devices[start:stop],
                     None if self.context is None else self.context.slice(start, stop))


@dataclass(frozen=True)
class SampleSpec:
    """One field of a context sample as a device sends it: its shape per sample, dtype and range."""

    name: str  # field name in the generate request, e.g. "items"
    shape: tuple[int, ...] = ()  # per sample; () is one number per sample, else a row-major flattened array
    dtype: str = "float32"  # "float32" or "int64"
    minimum: float | None = None  # smallest valid value (None: any finite value)
    maximum: float | None = None  # largest valid value
    description: str = ""  # shown in the OpenAPI document

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def is_integer(self) -> bool:
        return self.dtype.startswith("int")


@dataclass
class DeviceContext:
    """A batch of devices' samples turned into the generator's input."""

    vectors: torch.Tensor  # (B, M, context_dim)
    mask: torch.Tensor  # (B, M) bool, True where a sample is present


def torch_device_of(model: nn.Module) -> torch.device:
    """The torch device a model's parameters live on: where a task puts the tensors it builds for that model."""
    return next(model.parameters()).device


class Task(ABC):
    """A data set of devices and a personalised model: see the module docstring for the six methods to implement."""

    selection_metric: str  # the validation metric early stopping maximises (a key of `metrics`)
    trigger_window: int = 5  # how many of a device's latest samples its request trigger's score reads (`--trigger-window`)

    @property
    def name(self) -> str:
        """How runs and manifests name the task, and `cli.py train --task` finds it again: its import path
        "package.module:Class". A task registered under a name (the built-in ones, or a `duet.tasks` entry point)
        sets the class attribute `name` to it."""
        return f"{type(self).__module__}:{type(self).__qualname__}"

    # -- what a task implements ---------------------------------------------------------------------------------
    @abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised model with its slots named: `personalize(MyModel(), SlotConfig([...]))`."""

    @abstractmethod
    def devices(self, split: str) -> np.ndarray:
        """The device ids of a split (integers; "finetune" has the test devices)."""

    @abstractmethod
    def context(self, devices: Sequence[int], split: str) -> Samples:
        """These devices' recent unlabeled samples as they stand when `split` begins (the generator's input), one
        row per device, the same number M of sample places for every device."""

    @abstractmethod
    def batches(self, split: str, *, device: int | None = None, rng: np.random.Generator | None = None,
                batch_size: int | None = None) -> Iterator[Batch]:
        """Labeled batches of a split: all devices', or one `device`'s. With `rng`, shuffled (training, and the
        fine-tuning baseline's "finetune" batches); without, in a fixed order. `batch_size`: rows per batch (None:
        the task's choice)."""

    @abstractmethod
    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The mean training loss of `outputs = model(*batch.inputs)` over the batch's rows."""

    @abstractmethod
    def metrics(self, outputs: np.ndarray, targets: Any, devices: np.ndarray) -> dict[str, float]:
        """Metrics of the outputs (rows of every batch of a split, concatenated), their targets and each output
        row's device; `selection_metric` among them."""

    # -- saving and rebuilding (a dataclass task needs nothing more) ---------------------------------------------
    def config_json(self) -> dict:
        """Everything that rebuilds this task, saved in the run's config.json. Default: a dataclass's fields."""
        if dataclasses.is_dataclass(self):
            return dataclasses.asdict(self)
        raise NotImplementedError(f"{type(self).__name__} is not a dataclass: define config_json and "
                                  f"from_config_json to save and rebuild it")

    @classmethod
    def from_config_json(cls, obj: Mapping[str, Any], cache_dir: Path | None = None) -> "Task":
        """Rebuild the task from `config_json()`'s output. Default: the class called with it."""
        return cls(**obj)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], cache_dir: Path | None = None) -> "Task":
        """A new task from `cli.py train`'s options (`--set NAME=VALUE` among them). Default: the class called with
        the options its constructor names."""
        accepted = inspect.signature(cls).parameters
        return cls(**{k: v for k, v in options.items() if k in accepted and v is not None})

    @staticmethod
    def base_signature_of(config_json: Mapping[str, Any]) -> dict[str, Any]:
        """The part of a saved task config that Base depends on (data and architecture): `train --base-from` reuses
        a Base only when it matches. Default: all of it."""
        return dict(config_json)

    # -- training settings ----------------------------------------------------------------------------------------
    def train_defaults(self) -> dict[str, Any]:
        """TrainConfig fields this task trains best with (chosen on its validation split)."""
        return {}

    def generator_defaults(self) -> dict[str, Any]:
        """GeneratorConfig fields this task's generator is built with unless the user sets them."""
        return {}

    def finetune_defaults(self) -> dict[str, Any]:
        """The fine-tuning baseline's settings: lr, epochs, batch_size."""
        return {"lr": 1e-3, "epochs": 1, "batch_size": 32}

    def finetune_batches(self, device: int, *, seen: int = 0, rng: np.random.Generator,
                         batch_size: int | None = None) -> Iterator[Batch]:
        """The fine-tuning baseline's training batches for a test device: its labeled samples before the test period
        and, when its slots are refreshed during the test period (`evaluate --refresh-every`), its first `seen` test
        samples, whose labels the device has by then. Default: the "finetune" batches, then the first `seen` rows of
        `stream("test", device=device)` as its batches hold them (without their contexts)."""
        yield from self.batches("finetune", device=device, rng=rng, batch_size=batch_size)
        taken = 0
        for batch in (self.stream("test", device=device) if seen else ()):
            part = batch.slice(0, min(batch.rows, seen - taken))
            yield Batch(part.inputs, part.targets, part.devices)
            taken += part.rows
            if taken >= seen:
                break

    def shifted_devices(self, fraction: float) -> np.ndarray | None:
        """The `fraction` of test devices whose test data differs most from their training data (reported apart),
        or None (the default) when the task has no measure of that."""
        return None

    # -- refreshing slots during a split (`evaluate --refresh-every`, `--refresh trigger`) --------------------------
    def stream(self, split: str, *, device: int | None = None) -> Iterator[Batch]:
        """A split's labeled samples one per row, each device's rows in time order, each row carrying its own context
        (`Batch.context`): its device's recent samples as they stand just before that sample, never the sample itself
        nor a later one. Refreshed evaluation regenerates a device's slots from these. Default: `batches(split)`, whose
        rows must then carry their contexts (TaskError otherwise: override `stream`)."""
        from toolkit.errors import TaskError

        for batch in self.batches(split, device=device):
            if batch.context is None:
                raise TaskError(f"{type(self).__name__}.batches({split!r}) gives rows without their own context: "
                                f"implement stream() to evaluate with refreshed slots")
            yield batch

    def drift_features(self, samples: Samples) -> np.ndarray:
        """(rows, M, d) float64: a few numbers per context sample that a device computes without the cloud or the
        model, which the request trigger's window score averages and compares (docs/formats.md). Default: every
        floating-point field's values, flattened; TaskError when there is none."""
        from toolkit.errors import TaskError

        floats = [v.detach().cpu().double().reshape(*v.shape[:2], -1) for v in samples.fields.values()
                  if v.dtype.is_floating_point]
        if not floats:
            raise TaskError(f"{type(self).__name__} has no floating-point context field: implement drift_features "
                            f"for the trigger's window score")
        return torch.cat(floats, -1).numpy()

    def sample_confidence(self, outputs: np.ndarray) -> np.ndarray:
        """(rows,) in [0, 1]: how sure the model was of each scored sample (one output row each), which the request
        trigger's confidence score reads. Default: the largest softmax probability over the last axis."""
        logits = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
        shifted = np.exp(logits - logits.max(-1, keepdims=True))
        return shifted.max(-1) / shifted.sum(-1)

    # -- the generator's input -------------------------------------------------------------------------------------
    def context_vectors(self, model: nn.Module, samples: Samples) -> torch.Tensor:
        """(rows, M, context_dim) vectors of the samples for the generator. Default: the model's own features
        (toolkit.model.context.model_features: the input of its last slot module, or the output of the SlotConfig's
        `context_module`), with each sample's fields as the model's arguments. Plain tensor ops: the service traces
        it together with the generator."""
        from toolkit.model.context import model_features

        return model_features(model, samples)

    def context_table(self, model: nn.Module) -> torch.Tensor | None:
        """Optional, with `context_parts`: a table (V, t) whose rows begin every context vector; the service then
        folds the generator's first layer into it once. None (the default): the vectors are not of that form."""
        return None

    def context_parts(self, model: nn.Module, samples: Samples) -> tuple[torch.Tensor, torch.Tensor]:
        """(row ids (rows, M), the rest of each vector (rows, M, context_dim - t)) such that `context_vectors` is
        cat([context_table()[ids], rest], -1). Needed only when `context_table` is not None."""
        raise NotImplementedError(f"{type(self).__name__} has no context table")

    def device_context(self, model: nn.Module, device: int, split: str) -> DeviceContext:
        """One device's context vectors (a batch of 1) as they stand when `split` begins."""
        return self.devices_context(model, [device], split)

    def devices_context(self, model: nn.Module, devices: Sequence[int], split: str) -> DeviceContext:
        """Several devices' context vectors as they stand when `split` begins."""
        samples = self.context(devices, split).to(torch_device_of(model))
        return DeviceContext(self.context_vectors(model, samples), samples.mask)

    # -- the generate request on the wire ------------------------------------------------------------------------
    def context_specs(self) -> list[SampleSpec]:
        """Each field of a context sample as devices send it. Default: read off the data once (shapes and dtypes of
        `context`; for integer fields, the range seen in up to 256 training devices' contexts)."""
        from toolkit.tasks.requests import specs_from_data

        return self._read_once("_duet_context_specs", lambda: specs_from_data(self))

    def context_size(self) -> int:
        """M, the sample places of a device's context (the most samples a generate request may send). Default: read
        off one test device's context, once."""
        return self._read_once("_duet_context_size",
                               lambda: int(self.context(self.devices("test")[:1], "test").mask.shape[1]))

    def _read_once(self, key: str, read):
        """A default read off the data, kept on the task: the service asks for it with every batch of requests."""
        if key not in self.__dict__:
            self.__dict__[key] = read()
        return self.__dict__[key]

    def request_schema(self) -> dict:
        """JSON Schema of one generate-request body (device_id, then one array per context field)."""
        from toolkit.tasks.requests import request_schema

        return request_schema(self.context_specs(), self.context_size())

    def request_inputs(self, payloads: list[Mapping[str, Any]]) -> tuple[torch.Tensor, ...]:
        """Generate-request bodies, validated -> (each field (B, M, *shape), mask (B, M)); bad input raises
        RequestError naming what is wrong."""
        from toolkit.tasks.requests import request_inputs

        return request_inputs(payloads, self.context_specs(), self.context_size())

    def example_request(self, device: int) -> dict:
        """A valid generate-request body made of a test device's context."""
        from toolkit.tasks.requests import example_request

        return example_request(self.context([device], "test"), self.context_specs(), f"device-{device}")

    # -- the exported device program -----------------------------------------------------------------------------
    def export_shape_defaults(self) -> dict[str, int]:
        """The exported program's fixed shapes, by name. Default: {"batch": the inputs' rows per device}."""
        from toolkit.tasks.programs import rows_per_device

        return {"batch": rows_per_device(self)}

    def program_specs(self, model: nn.Module, export_shape: Mapping[str, int]) -> tuple[list[TensorSpec], TensorSpec]:
        """(the program's inputs, its output) at the export's shapes. Default: the model's inputs as its forward names
        them, `batch` rows each, integers as int32 (what every runtime takes); the output as computed."""
        from toolkit.tasks.programs import default_program_specs

        return default_program_specs(self, model, export_shape)

    def program_calls(self, split: str, export_shape: Mapping[str, int]) -> Iterator[tuple[int, tuple, Any]]:
        """(device, program inputs as numpy, targets) for every call that scores a split on the device. Default: each
        device's rows of `batches(split)` in chunks of `batch` rows, the last one zero-padded."""
        from toolkit.tasks.programs import default_program_calls

        return default_program_calls(self, split, export_shape)

    def export_form(self, model: nn.Module) -> nn.Module:
        """The same function as `model` (same inputs, slots and weights) written in the form the runtimes run
        fastest; the parity checks compare the two. Default: the model itself."""
        return model


__all__ = ["Batch", "DeviceContext", "SPLITS", "SampleSpec", "Samples", "Task", "torch_device_of"]
