"""The built-in tasks' slot head: a two-layer MLP whose two linear layers the tasks name as their slots."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

SLOT_MODULES = ("head.0", "head.1")  # what the built-in tasks pass to SlotConfig(target_modules=...)


@dataclass(frozen=True)
class HeadShape:
    """Sizes of the slot MLP: in_dim -> hidden_dim (ReLU) -> out_dim."""

    in_dim: int  # size of the state the static layers produce
    hidden_dim: int  # hidden units of the slot MLP
    out_dim: int  # size of the output vector (scored against a target embedding, or class logits)


class SlotMLP(nn.ModuleList):
    """Linear, ReLU, Linear as a list of its two linear layers (`head.0`, `head.1`: the slot modules)."""

    def __init__(self, shape: HeadShape):
        super().__init__([nn.Linear(shape.in_dim, shape.hidden_dim), nn.Linear(shape.hidden_dim, shape.out_dim)])
        self.shape = shape

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self[1](F.relu(self[0](state)))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Runs saved before the slots were modules stored the head as `head.params.0..3` (weight, bias, weight,
        bias): read them under today's names."""
        legacy = [f"{prefix}params.{i}" for i in range(4)]
        if all(key in state_dict for key in legacy):
            for key, name in zip(legacy, ("0.weight", "0.bias", "1.weight", "1.bias")):
                state_dict[f"{prefix}{name}"] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
