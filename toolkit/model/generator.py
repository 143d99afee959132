"""The DUET parameter generator: a hypernetwork from a device's unlabeled samples to its slot parameters.

It is task-agnostic: it reads a set of context vectors (the task turns the device's samples into them)
and writes a residual around the Base slots. Each weight residual is low-rank, so the generator's cost
grows linearly with the slot sizes. The Stable Weight Adapter (stabiliser) mixes several candidate
device codes by their self-similarity before the output heads read them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from toolkit.config import GeneratorConfig
from toolkit.protocol.slots import SlotSpec


class SetEncoder(nn.Module):
    """Context vectors -> one device code: a per-vector MLP, then masked mean and attention pooling."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        width = cfg.sample_width
        self.embed = nn.Sequential(nn.Linear(cfg.context_dim, width), nn.SiLU(), nn.Linear(width, cfg.code_dim))
        self.query = nn.Linear(cfg.code_dim, 1, bias=False)  # a bias would cancel in the softmax
        self.out = nn.Sequential(nn.Linear(2 * cfg.code_dim, cfg.code_dim), nn.LayerNorm(cfg.code_dim))
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.training:
            context = self.dropout(context)
        return self.pool(self.embed[0](context), mask)

    def pool(self, first: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The device code from the per-sample layer's first output (B, M, sample_dim), before its activation."""
        # embed = Linear, SiLU, Linear. Both poolings are linear in the last Linear's output, so that layer is
        # applied after pooling (the same function): its cost does not grow with the context size.
        _, activation, last = self.embed
        g = activation(first)  # (B, M, sample_dim)
        weight = mask.to(g.dtype)
        mean_weights = weight / weight.sum(1, keepdim=True).clamp(min=1.0)
        # query(last(g)) = g . (W_last^T q) + a constant that cancels in the softmax
        logits = (g @ (last.weight.t() @ self.query.weight.t())).squeeze(-1).masked_fill(~mask, -1e9)
        pooling = torch.stack([mean_weights, logits.softmax(1)], 1)  # (B, 2, M): mean, attention
        pooled = F.linear(pooling @ g, last.weight, last.bias)  # (B, 2, code)
        return self.out(pooled.flatten(1))


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
    """Device code -> every slot's residual through ONE linear map.

    A weight slot of shape (rows, *rest) — a linear layer's (out, in), a convolution's (out, in, kh, kw) — is a
    matrix of rows x cols, cols = the product of the rest; it gets U V^T / rank from a (rows x rank) and a
    (cols x rank) block of the output, reshaped to the slot's shape. A vector slot (a bias, a LayerNorm scale) gets
    its block directly. Output size = sum over slots of (rows + cols) x rank or length: linear in the slot sizes.
    """

    def __init__(self, specs: list[SlotSpec], cfg: GeneratorConfig):
        super().__init__()
        self.specs, self.rank = list(specs), cfg.rank
        blocks: list[tuple[int, bool]] = []  # (size, starts small): U factors and vectors start near zero
        for spec in self.specs:
            if len(spec.shape) >= 2:
                rows, cols = matrix_shape(spec.shape)
                blocks += [(rows * cfg.rank, True), (cols * cfg.rank, False)]
            elif len(spec.shape) == 1:
                blocks.append((spec.shape[0], True))
            else:
                raise ValueError(f"slot {spec.name} is a scalar; the generator writes vectors, matrices and kernels")
        self.sizes = [size for size, _ in blocks]
        self.project = nn.Linear(cfg.code_dim, sum(self.sizes))
        with torch.no_grad():
            start = 0
            for size, small in blocks:
                if small:  # the first residuals are tiny, so DUET starts from Base's behaviour
                    nn.init.normal_(self.project.weight[start : start + size], std=1e-3)
                    self.project.bias[start : start + size].zero_()
                start += size

    def forward(self, code: torch.Tensor, base_params: list[torch.Tensor]) -> list[torch.Tensor]:
        """Base slots + generated residuals, one (B, *shape) tensor per slot."""
        parts = iter(self.project(code).split(self.sizes, -1))
        out = []
        for spec, base in zip(self.specs, base_params):
            if len(spec.shape) >= 2:
                rows, cols = matrix_shape(spec.shape)
                left = next(parts).reshape(-1, rows, self.rank)
                right = next(parts).reshape(-1, cols, self.rank)
                matrix = torch.baddbmm(base.reshape(rows, cols)[None], left, right.transpose(1, 2), alpha=1.0 / self.rank)
                out.append(matrix if len(spec.shape) == 2 else matrix.reshape(-1, *spec.shape))
            else:
                out.append(base[None] + next(parts))
        return out


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """The matrix a weight slot is written as: (its first dimension, the product of the others)."""
    cols = 1
    for size in shape[1:]:
        cols *= int(size)
    return int(shape[0]), cols


class ParameterGenerator(nn.Module):
    """Context vectors of each device -> that device's slot parameters (Base slots + generated residual)."""

    def __init__(self, cfg: GeneratorConfig, slot_specs: list[SlotSpec]):
        super().__init__()
        self.cfg = cfg
        self.slot_specs = list(slot_specs)
        self.encoder = SetEncoder(cfg)
        self.stabilizer = StableWeightAdapter(cfg) if cfg.stabilizer else nn.Identity()
        self.writer = SlotWriter(self.slot_specs, cfg)

    def device_code(self, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.stabilizer(self.encoder(context, mask))

    def forward(self, context: torch.Tensor, mask: torch.Tensor,
                base_params: list[torch.Tensor]) -> list[torch.Tensor]:
        """(B, M, context_dim) vectors and (B, M) mask -> one (B, *shape) tensor per slot."""
        return self.writer(self.device_code(context, mask), base_params)

    @property
    def first_layer(self) -> nn.Linear:
        """The per-sample layer's first linear map (context_dim -> sample width): what `from_first_layer` starts after,
        and what the service folds into a task's context table."""
        return self.encoder.embed[0]

    def from_first_layer(self, first: torch.Tensor, mask: torch.Tensor,
                         base_params: list[torch.Tensor]) -> list[torch.Tensor]:
        """`forward` from the per-sample layer's first output, `first_layer(context)`, computed by the caller
        (the service folds that layer into a task's context table; see `toolkit.training.serving`)."""
        return self.writer(self.stabilizer(self.encoder.pool(first, mask)), base_params)
