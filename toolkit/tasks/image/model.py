"""A small CNN for 8x8 digit images: conv trunk (static layers), slot head as the classifier."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from toolkit.tasks.model_base import TaskModel
from toolkit.tasks.head import HeadShape, SlotHead, apply_head


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


class DigitCNN(TaskModel):
    """logits = head(trunk(image)); the trunk also embeds the device's context images for the generator.

    An image backbone takes the ImageModelConfig and offers embed, context, context_vectors, slot_specs and
    forward(images, head_params=None) like this one; `train_defaults` are the training settings it changes.
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
        self.head = SlotHead(cfg.head_shape)

    @property
    def context_dim(self) -> int:
        return self.cfg.feature_dim + self.cfg.n_classes

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(..., side, side) images -> (..., feature_dim) embeddings."""
        lead = images.shape[:-2]
        flat = images.reshape(-1, 1, self.cfg.image_side, self.cfg.image_side)
        return self.trunk(flat).reshape(*lead, self.cfg.feature_dim)

    def context(self, images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(context vectors, mask) of (B, K, side, side) context images, `mask` (B, K) True where present."""
        return self.context_vectors(images), mask

    def context_vectors(self, images: torch.Tensor) -> torch.Tensor:
        """Generator input per context image: its embedding and the Base head's class probabilities.

        The probabilities let the generator estimate the device's label mix from unlabeled images.
        """
        features = self.embed(images)
        return torch.cat([features, self.head(features).softmax(-1)], -1)

    def forward(self, images: torch.Tensor, head_params: list[torch.Tensor] | None = None) -> torch.Tensor:
        features = self.dropout(self.embed(images))
        return self.head(features) if head_params is None else apply_head(features, head_params)
