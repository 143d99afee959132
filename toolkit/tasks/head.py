"""The slot head: a two-layer MLP whose parameters are the swappable slots of a device model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from toolkit.protocol.slots import SlotSpec


@dataclass(frozen=True)
class HeadShape:
    """Sizes of the slot MLP: in_dim -> hidden_dim (ReLU) -> out_dim."""

    in_dim: int  # size of the state the static layers produce
    hidden_dim: int  # hidden units of the slot MLP
    out_dim: int  # size of the output vector (scored against a target embedding, or class logits)

    def slot_specs(self) -> list[SlotSpec]:
        return [
            SlotSpec("head.0.weight", (self.hidden_dim, self.in_dim)),
            SlotSpec("head.0.bias", (self.hidden_dim,)),
            SlotSpec("head.1.weight", (self.out_dim, self.hidden_dim)),
            SlotSpec("head.1.bias", (self.out_dim,)),
        ]


def apply_head(state: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """Run the slot MLP on `state` (B, ..., in_dim).

    `params` are either shared by the batch (weights 2-D, as on a device) or one set per row
    (weights 3-D with a leading batch dimension, as the generator produces them in training).
    """
    w1, b1, w2, b2 = params
    if w1.dim() == 2:
        return F.linear(F.relu(F.linear(state, w1, b1)), w2, b2)
    flat = state.reshape(state.shape[0], -1, state.shape[-1])
    hidden = F.relu(torch.bmm(flat, w1.transpose(1, 2)) + b1[:, None, :])
    out = torch.bmm(hidden, w2.transpose(1, 2)) + b2[:, None, :]
    return out.reshape(*state.shape[:-1], out.shape[-1])


class SlotHead(nn.Module):
    """The Base head: one learned parameter set, shared by every device."""

    def __init__(self, shape: HeadShape):
        super().__init__()
        self.shape = shape
        first, second = nn.Linear(shape.in_dim, shape.hidden_dim), nn.Linear(shape.hidden_dim, shape.out_dim)
        self.params = nn.ParameterList([first.weight, first.bias, second.weight, second.bias])

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return apply_head(state, list(self.params))

    def as_slots(self) -> dict[str, torch.Tensor]:
        return {spec.name: p.detach() for spec, p in zip(self.shape.slot_specs(), self.params)}
