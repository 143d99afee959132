"""A small CNN for 8x8 digit images: conv trunk (static layers), slot head as the classifier."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from toolkit.model.slots import SlotConfig, personalize
from toolkit.tasks.head import SLOT_MODULES, HeadShape, SlotMLP


@dataclass(frozen=True)
class ImageModelConfig:
    """Architecture of the digit classifier; saved with every run and rebuilt from it."""

    backbone: str = "cnn"  # the registry's image backbone (toolkit.registry.BACKBONES["image"])
    image_side: int = 8  # input images are image_side x image_side, one channel
    channels: tuple[int, int] = (16, 32)  # conv widths: a 3x3 conv, then a stride-2 3x3 conv
    feature_dim: int = 32  # size of the image embedding the head (and the generator) read
    head_hidden: int = 64  # hidden units of the slot head
    n_classes: int = 10  # classifier outputs
    dropout: float = 0.1  # dropout on the image embedding during training

    @property
    def head_shape(self) -> HeadShape:
        return HeadShape(self.feature_dim, self.head_hidden, self.n_classes)


class DigitCNN(nn.Module):
    """logits = head(trunk(images)) for (N, 1, side, side) images; the head's two layers are the slots.

    An image backbone takes the ImageModelConfig and offers `personalized`, `embed` and forward(images) like this
    one; `train_defaults` are the training settings it changes.
    """

    train_defaults: dict = {}

    def __init__(self, cfg: ImageModelConfig):
        super().__init__()
        self.cfg = cfg
        c1, c2 = cfg.channels
        reduced = (cfg.image_side + 1) // 2
        self.trunk = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(c2 * reduced * reduced, cfg.feature_dim), nn.ReLU(),
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = SlotMLP(cfg.head_shape)

    @classmethod
    def personalized(cls, cfg: ImageModelConfig) -> "DigitCNN":
        """A new model whose slots are its head's two linear layers."""
        return personalize(cls(cfg), SlotConfig(SLOT_MODULES))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(..., 1, side, side) images -> (..., feature_dim) embeddings."""
        flat = images.reshape(-1, 1, self.cfg.image_side, self.cfg.image_side)
        return self.trunk(flat).reshape(*images.shape[:-3], self.cfg.feature_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(images)))
