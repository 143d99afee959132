"""The generator's input: devices' recent unlabeled samples (Samples), and by default the model's own features on them
(DUET's premise).

The features are the input of the model's last slot module (what the personalised layers read), or the output of
the module its SlotConfig names as `context_module`, captured by a forward hook while the model runs on the samples
with Base's slots; maps with spatial dimensions are averaged over them, sequences over their positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from toolkit.model.slots import slot_config, slot_modules


@dataclass
class Samples:
    """Devices' recent unlabeled samples, one row per device (or per training row): each field (rows, M, *sample
    shape), right-aligned (the newest sample last) and zero-padded on the left; `mask` True where a sample is."""

    fields: dict[str, torch.Tensor]  # name -> (rows, M, *shape), e.g. {"images": (rows, M, 1, 8, 8)}
    mask: torch.Tensor  # (rows, M) bool

    @property
    def rows(self) -> int:
        return int(self.mask.shape[0])

    def to(self, device: torch.device | str) -> "Samples":
        return Samples({k: v.to(device) for k, v in self.fields.items()}, self.mask.to(device))

    def slice(self, start: int, stop: int) -> "Samples":
        return Samples({k: v[start:stop] for k, v in self.fields.items()}, self.mask[start:stop])


def feature_module(model: nn.Module) -> tuple[str, nn.Module, bool]:
    """(name, module, True to read its output / False its input) of the layer whose features the generator reads."""
    name = slot_config(model).context_module
    if name:
        return name, model.get_submodule(name), True
    name, module = slot_modules(model)[-1]
    return name, module, False


def pooled(features: torch.Tensor) -> torch.Tensor:
    """(N, D) from a layer's (N, D), (N, C, H, W) (averaged over H, W) or (N, ..., D) (averaged over the middle)."""
    if features.dim() == 2:
        return features
    if features.dim() == 4:
        return features.mean(dim=(2, 3))
    return features.reshape(features.shape[0], -1, features.shape[-1]).mean(1)


def model_features(model: nn.Module, samples: Samples) -> torch.Tensor:
    """(rows, M, D): each sample's features, the samples' fields given to the model as its arguments in order."""
    name, module, read_output = feature_module(model)
    rows, size = samples.mask.shape
    seen: list[torch.Tensor] = []

    def hook(_module, inputs, output):
        seen.append(output if read_output else inputs[0])

    handle = module.register_forward_hook(hook)
    training = model.training
    model.eval()
    try:
        model(*(field.reshape(rows * size, *field.shape[2:]) for field in samples.fields.values()))
    finally:
        handle.remove()
        model.train(training)
    if not seen:
        raise RuntimeError(f"the model never called {name!r} on the context samples, so it has no features to read")
    features = pooled(seen[0])
    return features.reshape(rows, size, features.shape[-1])
