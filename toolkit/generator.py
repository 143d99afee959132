"""The DUET parameter generator: a hypernetwork from a device's unlabeled samples to its slot parameters.

It is task-agnostic: it reads a set of context vectors (the task turns the device's samples into them)
and writes a residual around the Base slots. Each weight residual is low-rank, so the generator's cost
grows linearly with the slot sizes. The Stable Weight Adapter (stabiliser) mixes several candidate
device codes by their self-similarity before the output heads read them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from toolkit.slots import SlotSpec


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of the parameter generator; saved with every run."""

    context_dim: int  # size of each context vector the task provides
    code_dim: int = 64  # size of the device code every slot is generated from
    rank: int = 4  # rank of each generated weight residual (cost is linear in rows + columns)
    n_candidates: int = 4  # candidate codes mixed by the stabiliser
    stabilizer: bool = True  # Stable Weight Adapter on; off for the ablation
    dropout: float = 0.1  # dropout on context vectors during training


class SetEncoder(nn.Module):
    """Context vectors -> one device code: a per-vector MLP, then masked mean and attention pooling."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(cfg.context_dim, cfg.code_dim), nn.GELU(),
                                   nn.Linear(cfg.code_dim, cfg.code_dim))
        self.query = nn.Linear(cfg.code_dim, 1, bias=False)  # a bias would cancel in the softmax
        self.out = nn.Sequential(nn.Linear(2 * cfg.code_dim, cfg.code_dim), nn.LayerNorm(cfg.code_dim))
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # embed = Linear, GELU, Linear. Both poolings are linear in the last Linear's output, so that layer is
        # applied after pooling (exactly the same function): its cost no longer grows with the context size.
        first, activation, last = self.embed
        g = activation(first(self.dropout(context)))
        weight = mask.to(g.dtype)[..., None]
        present = (weight.sum(1) > 0).to(g.dtype)
        mean_g = (g * weight).sum(1) / weight.sum(1).clamp(min=1.0)
        # query(last(g)) = g . (W_last^T q) + const; the constant cancels in the softmax
        logits = (g @ (last.weight.t() @ self.query.weight.t())).masked_fill(~mask[..., None], -1e9)
        attended_g = (logits.softmax(1) * g).sum(1)
        mean = F.linear(mean_g, last.weight) + last.bias * present
        attended = F.linear(attended_g, last.weight) + last.bias * present
        return self.out(torch.cat([mean, attended], -1))


class StableWeightAdapter(nn.Module):
    """Several candidate codes, re-weighted by their self-similarity (attention) and averaged."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.n, self.dim = cfg.n_candidates, cfg.code_dim
        self.candidates = nn.Linear(cfg.code_dim, cfg.n_candidates * cfg.code_dim)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        z = self.candidates(code).reshape(-1, self.n, self.dim)
        similarity = z @ z.transpose(1, 2) / math.sqrt(self.dim)
        return (similarity.softmax(-1) @ z).mean(1) + code


class SlotWriter(nn.Module):
    """Device code -> one slot's residual: U(code) V(code)^T / rank for a matrix, a linear map for a vector."""

    def __init__(self, spec: SlotSpec, cfg: GeneratorConfig):
        super().__init__()
        self.spec = spec
        self.rank = cfg.rank
        if len(spec.shape) == 2:
            rows, cols = spec.shape
            self.left = nn.Linear(cfg.code_dim, rows * cfg.rank)
            self.right = nn.Linear(cfg.code_dim, cols * cfg.rank)
            nn.init.normal_(self.left.weight, std=1e-3)
            nn.init.zeros_(self.left.bias)
        elif len(spec.shape) == 1:
            self.vector = nn.Linear(cfg.code_dim, spec.shape[0])
            nn.init.normal_(self.vector.weight, std=1e-3)
            nn.init.zeros_(self.vector.bias)
        else:
            raise ValueError(f"slot {spec.name} has shape {spec.shape}; the generator writes 1-D and 2-D slots")

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        if len(self.spec.shape) == 1:
            return self.vector(code)
        rows, cols = self.spec.shape
        left = self.left(code).reshape(-1, rows, self.rank)
        right = self.right(code).reshape(-1, cols, self.rank)
        return left @ right.transpose(1, 2) / self.rank


class ParameterGenerator(nn.Module):
    """Context vectors of each device -> that device's slot parameters (Base slots + generated residual)."""

    def __init__(self, cfg: GeneratorConfig, slot_specs: list[SlotSpec]):
        super().__init__()
        self.cfg = cfg
        self.slot_specs = list(slot_specs)
        self.encoder = SetEncoder(cfg)
        self.stabilizer = StableWeightAdapter(cfg) if cfg.stabilizer else nn.Identity()
        self.writers = nn.ModuleList(SlotWriter(spec, cfg) for spec in self.slot_specs)

    def device_code(self, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.stabilizer(self.encoder(context, mask))

    def forward(self, context: torch.Tensor, mask: torch.Tensor,
                base_params: list[torch.Tensor]) -> list[torch.Tensor]:
        """(B, M, context_dim) vectors and (B, M) mask -> one (B, *shape) tensor per slot."""
        code = self.device_code(context, mask)
        return [base[None] + writer(code) for base, writer in zip(base_params, self.writers)]


def generator_regulariser(deltas: list[torch.Tensor]) -> torch.Tensor:
    """Mean squared size of the generated residuals (keeps generated slots near the Base slots)."""
    return sum(F.mse_loss(d, torch.zeros_like(d), reduction="mean") for d in deltas) / len(deltas)
