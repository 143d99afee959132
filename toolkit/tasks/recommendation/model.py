"""Sequential recommenders (SASRec, GRU4Rec, DIN): static item embeddings and encoder, a slot head on top."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from toolkit.errors import ConfigError
from toolkit.model.slots import SlotConfig, personalize
from toolkit.tasks.head import SLOT_MODULES, HeadShape, SlotMLP

NEG_INF = -1e9  # finite "minus infinity" for masks: keeps exported programs free of NaN on empty rows


@dataclass(frozen=True)
class RecModelConfig:
    """Architecture of a sequential recommender; saved with every run and rebuilt from it."""

    backbone: str  # "sasrec", "gru4rec" or "din"
    n_items: int  # item vocabulary including the padding index 0
    max_len: int = 30  # L: history items the model reads
    embed_dim: int = 32  # item embedding size
    n_layers: int = 1  # transformer blocks (SASRec only)
    n_heads: int = 1  # attention heads (SASRec only)
    dropout: float = 0.2  # dropout on embeddings and encoder outputs during training
    head_hidden: int = 64  # hidden units of the slot head
    context_items: int = 100  # M: a device's most recent items the generator reads
    context_time: bool = True  # the generator also reads when each context item was clicked
    time_mean: float = 0.0  # unix-time normalisation of the time features (set from the training data)
    time_std: float = 1.0

    def __post_init__(self) -> None:
        positive = {k: getattr(self, k) for k in ("n_items", "max_len", "embed_dim", "n_layers", "n_heads", "head_hidden",
                                                   "context_items")}
        wrong = [f"{k}={v!r}" for k, v in positive.items() if type(v) is not int or v < 1]
        if wrong:
            raise ConfigError(f"model settings must be positive integers: {', '.join(wrong)}")
        if self.embed_dim % self.n_heads:
            raise ConfigError(f"embed_dim {self.embed_dim} is not divisible by n_heads {self.n_heads}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not (math.isfinite(self.time_mean) and math.isfinite(self.time_std) and self.time_std > 0):
            raise ConfigError(f"time_mean must be finite and time_std finite and > 0, got {self.time_mean!r} and "
                              f"{self.time_std!r}")

    @property
    def encoder_class(self) -> type:
        """The backbone's encoder class, from the registry (ConfigError for an unknown backbone)."""
        from toolkit.registry import backbone_class

        return backbone_class("recommendation", self.backbone)

    @property
    def head_shape(self) -> HeadShape:
        return HeadShape(self.encoder_class.state_factor * self.embed_dim, self.head_hidden, self.embed_dim)


class SASRecEncoder(nn.Module):
    """Causal self-attention over the history; the state is the output at the last position.

    Every encoder: forward(hist_emb (B, L, d), hist_mask (B, L), cand_emb (B, C, d)) -> state (B, C, state_factor * d);
    `train_defaults` are the training settings this backbone changes (chosen on validation); optional:
    `state_per_candidate` False says the state does not depend on the candidates (RecExportModel then runs the head
    once, not C times), and `export_form()` returns the same function written for the exporters' runtimes.
    """

    state_factor = 1
    train_defaults: dict = {}
    state_per_candidate = False  # the state is the history's alone, the same for every candidate

    def __init__(self, cfg: RecModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.position = nn.Embedding(cfg.max_len, d)
        self.blocks = nn.ModuleList(_TransformerBlock(d, cfg.n_heads, cfg.dropout) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(cfg.dropout)
        self.register_buffer("causal", torch.tril(torch.ones(cfg.max_len, cfg.max_len, dtype=torch.bool)),
                             persistent=False)

    def forward(self, hist_emb: torch.Tensor, hist_mask: torch.Tensor, cand_emb: torch.Tensor) -> torch.Tensor:
        length = hist_emb.shape[1]
        x = hist_emb * math.sqrt(self.cfg.embed_dim) + self.position.weight[-length:][None]
        x = self.dropout(x) * hist_mask[..., None]
        allowed = self.causal[-length:, -length:][None] & hist_mask[:, None, :]
        bias = torch.where(allowed, 0.0, NEG_INF)
        for block in self.blocks:
            x = block(x, bias) * hist_mask[..., None]
        state = self.norm(x[:, -1])
        return state[:, None, :].expand(-1, cand_emb.shape[1], -1)


class _TransformerBlock(nn.Module):
    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d, d))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        h = self.n_heads
        q, k, v = self.qkv(self.norm1(x)).reshape(b, length, 3, h, d // h).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // h) + bias[:, None]
        attended = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, length, d)
        x = x + self.dropout(self.proj(attended))
        return x + self.dropout(self.ff(self.norm2(x)))


class GRU4RecEncoder(nn.Module):
    """A GRU over the history (unrolled, so every export path sees plain linear ops); state = last hidden."""

    state_factor = 1
    train_defaults: dict = {}
    state_per_candidate = False

    def __init__(self, cfg: RecModelConfig):
        super().__init__()
        d = cfg.embed_dim
        self.input_gates = nn.Linear(d, 3 * d)
        self.hidden_gates = nn.Linear(d, 3 * d)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, hist_emb: torch.Tensor, hist_mask: torch.Tensor, cand_emb: torch.Tensor) -> torch.Tensor:
        # Slices rather than indexing/chunk: XNNPACK delegates slices, so the exported loop stays in one partition.
        x = self.dropout(hist_emb)
        d = x.shape[-1]
        gates_in = self.input_gates(x)
        hidden = torch.zeros_like(x[:, 0])
        keep = hist_mask[..., None].to(x.dtype)
        for step in range(x.shape[1]):
            step_in = gates_in[:, step : step + 1].squeeze(1)
            step_h = self.hidden_gates(hidden)
            reset = torch.sigmoid(step_in[:, :d] + step_h[:, :d])
            update = torch.sigmoid(step_in[:, d : 2 * d] + step_h[:, d : 2 * d])
            candidate = torch.tanh(step_in[:, 2 * d :] + reset * step_h[:, 2 * d :])
            new_hidden = (1 - update) * candidate + update * hidden
            kept = keep[:, step : step + 1].squeeze(1)
            hidden = kept * new_hidden + (1 - kept) * hidden
        return self.dropout(hidden)[:, None, :].expand(-1, cand_emb.shape[1], -1)


class DINEncoder(nn.Module):
    """Target attention (DIN): history items weighted by an MLP of (item, candidate); state per candidate.

    The MLP's first layer on [h, c, h - c, h * c] is applied in its factorised form
    W_h h + W_c c + W_p (h * c): the same function class at a quarter of the cost. The state is
    [pooled, pooled * candidate]; its static layers stay frozen while the generator trains (chosen on validation:
    joint training hurt DIN).
    """

    state_factor = 2
    train_defaults = {"backbone_lr": 0.0}
    state_per_candidate = True

    def __init__(self, cfg: RecModelConfig):
        super().__init__()
        d = cfg.embed_dim
        self.from_history = nn.Linear(d, d)
        self.from_candidate = nn.Linear(d, d, bias=False)
        self.from_product = nn.Linear(d, d, bias=False)
        self.score = nn.Linear(d, 1)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, hist_emb: torch.Tensor, hist_mask: torch.Tensor, cand_emb: torch.Tensor) -> torch.Tensor:
        hidden = (self.from_history(hist_emb)[:, None, :, :] + self.from_candidate(cand_emb)[:, :, None, :]
                  + self.from_product(hist_emb[:, None, :, :] * cand_emb[:, :, None, :]))
        logits = self.score(F.relu(hidden)).squeeze(-1)
        logits = logits + torch.where(hist_mask, 0.0, NEG_INF)[:, None, :]
        pooled = logits.softmax(-1) @ hist_emb
        return self.dropout(torch.cat([pooled, pooled * cand_emb], -1))

    def export_form(self) -> nn.Module:
        return _DINExportAttention(self)


class _DINExportAttention(nn.Module):
    """DINEncoder's eval-mode function (no dropout) for the exported programs, same layers and weights.

    One change of form: the score layer has one output for each of the B*C*L (candidate, history item) pairs, and a
    matmul with one output column runs at a fraction of the runtimes' speed (XNNPACK, ETDump: 49 µs of a 309 µs
    call). Here the score weight is the left operand against all pairs at once, `F.linear(w, pairs)`, which XNNPACK
    runs as one row against a run-time weight (22 µs); the sums are the same, their rounding may differ in the last
    bits.
    """

    def __init__(self, encoder: DINEncoder):
        super().__init__()
        self.from_history, self.from_candidate = encoder.from_history, encoder.from_candidate
        self.from_product, self.score = encoder.from_product, encoder.score

    def forward(self, hist_emb: torch.Tensor, hist_mask: torch.Tensor, cand_emb: torch.Tensor) -> torch.Tensor:
        b, length, d = hist_emb.shape
        pairs = (self.from_history(hist_emb)[:, None, :, :] + self.from_candidate(cand_emb)[:, :, None, :]
                 + self.from_product(hist_emb[:, None, :, :] * cand_emb[:, :, None, :]))
        flat = F.relu(pairs).reshape(-1, d)
        logits = F.linear(self.score.weight, flat).reshape(b, -1, length) + self.score.bias
        logits = logits + torch.where(hist_mask, 0.0, NEG_INF)[:, None, :]
        pooled = torch.bmm(logits.softmax(-1), hist_emb)
        return torch.cat([pooled, pooled * cand_emb], -1)


class RecModel(nn.Module):
    """Item embeddings + encoder (static layers) and a slot head; score = head(state) . e_item + b_item.

    forward(history (B, L), candidates (B, C)) -> logits (B, C); its slots (`personalized`) are the head's layers."""

    def __init__(self, cfg: RecModelConfig):
        super().__init__()
        encoder = cfg.encoder_class
        self.cfg = cfg
        self.item_embedding = nn.Embedding(cfg.n_items, cfg.embed_dim, padding_idx=0)
        nn.init.normal_(self.item_embedding.weight, std=cfg.embed_dim ** -0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
        self.item_bias = nn.Embedding(cfg.n_items, 1)
        nn.init.zeros_(self.item_bias.weight)
        self.encoder = encoder(cfg)
        self.head = SlotMLP(cfg.head_shape)

    @classmethod
    def personalized(cls, cfg: RecModelConfig) -> "RecModel":
        """A new model whose slots are its head's two linear layers."""
        return personalize(cls(cfg), SlotConfig(SLOT_MODULES))

    def context(self, items: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        """Context vectors of right-aligned context items (B, M), 0 where absent, and their times: each vector is the
        item's shared embedding, then (with `context_time`) its time features (the mask is `items > 0`)."""
        ids, features = self.context_parts(items, times)
        vectors = self.item_embedding(ids)
        return torch.cat([vectors, features], -1) if features.shape[-1] else vectors

    def context_table(self) -> torch.Tensor:
        """The table whose rows begin the context vectors: the item embeddings (see `context_parts`)."""
        return self.item_embedding.weight

    def context_parts(self, items: torch.Tensor, times: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(item ids (B, M), the rest of each context vector: (B, M, 3) time features (z-scored time, its square,
        log age in days / 5), or (B, M, 0) without them)."""
        present = items > 0
        if not self.cfg.context_time:
            return items, self.item_embedding.weight.new_zeros(*items.shape, 0)
        if times is None:
            raise ValueError("this model's generator reads timestamps; none were given")
        times = times.to(torch.float64)
        latest = torch.where(present, times, torch.full_like(times, -1e18)).amax(1, keepdim=True)
        z = (times - self.cfg.time_mean) / self.cfg.time_std
        age_days = (latest - times).clamp(min=0) / 86400.0
        features = torch.stack([z, z * z, torch.log1p(age_days) / 5], -1).to(self.item_embedding.weight.dtype)
        return items, features * present[..., None]

    def encode(self, hist: torch.Tensor, cand: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Static layers: (state (B, C, in_dim), candidate embeddings (B, C, d))."""
        cand_emb = self.item_embedding(cand)
        state = self.encoder(self.item_embedding(hist), hist > 0, cand_emb)
        return state, cand_emb

    def forward(self, history: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        state, cand_emb = self.encode(history, candidates)
        return (self.head(state) * cand_emb).sum(-1) + self.item_bias(candidates).squeeze(-1)


class RecExportModel(nn.Module):
    """RecModel's device function (eval mode) in the form the exporters convert (it shares the model's modules, so
    the slots bound to the model's head are the ones it computes with).

    Same layers and weights. An encoder whose state does not depend on the candidates (SASRec, GRU4Rec) is run for
    one candidate and the slot head once, its vector then scored against every candidate, instead of running the
    head on C identical rows; an encoder with an `export_form` (DIN) runs in that form.
    """

    def __init__(self, model: RecModel):
        super().__init__()
        self.item_embedding, self.item_bias, self.head = model.item_embedding, model.item_bias, model.head
        encoder = model.encoder
        self.encoder = encoder.export_form() if hasattr(encoder, "export_form") else encoder
        self.per_candidate = bool(getattr(encoder, "state_per_candidate", True))  # unknown: assume it depends

    def forward(self, history: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        hist, cand = history, candidates
        cand_emb = self.item_embedding(cand)
        query = cand_emb if self.per_candidate else cand_emb[:, :1]
        vector = self.head(self.encoder(self.item_embedding(hist), hist > 0, query))
        return (vector * cand_emb).sum(-1) + self.item_bias(cand).squeeze(-1)


def bce_loss(logits: torch.Tensor) -> torch.Tensor:
    """Pointwise BCE where column 0 holds the positive and the rest are negatives."""
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1.0
    return F.binary_cross_entropy_with_logits(logits, labels)
