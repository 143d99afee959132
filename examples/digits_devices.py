"""Your own model and data with DUET, written as a user of the toolkit would: a small CNN that is not in the toolkit,
and devices made from scikit-learn's handwritten digits, each with its own writing style and mix of digits.

The model's slots are a convolution, a LayerNorm and the classifier (`personalize`); the task says which devices
there are, what each one's recent unlabeled images are (what the generator reads), its labeled images, the loss
and the metrics. `personalize_digits.py` trains, evaluates and exports it; docs/python-api.md walks through it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

import toolkit as duet


class DigitNet(nn.Module):
    """conv -> conv -> LayerNorm -> classifier over (N, 1, 8, 8) images."""

    def __init__(self, width: int = 16, classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.mix = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm(width)
        self.classifier = nn.Linear(width, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = F.relu(self.mix(F.relu(self.stem(images)))).mean(dim=(2, 3))
        return self.classifier(self.norm(features))


@dataclass
class DigitsDevices(duet.Task):
    """Devices over scikit-learn's digits: each device's images share a slant, a stroke contrast and noise, and
    follow its own skewed mix of digits. A device's first `context_images` images are its recent unlabeled samples;
    the rest are labeled (the first half of them for fine-tuning's baseline, the second half for the test)."""

    devices_per_split: int = 40  # train, val and test devices each
    images_per_device: int = 48
    context_images: int = 16  # recent unlabeled images per device (what the generator reads)
    width: int = 16  # DigitNet's channels
    seed: int = 0

    selection_metric = "accuracy"  # a class attribute, not a field: what early stopping maximises

    def __post_init__(self):
        digits = load_digits()
        rng = np.random.default_rng(self.seed)
        images = (digits.images / 16.0).astype(np.float32)
        held_out = rng.random(len(images)) < 0.3  # test devices draw from digits the cloud never sees
        self.images, self.labels = {}, {}
        for split, pool in (("train", ~held_out), ("val", ~held_out), ("test", held_out)):
            self.images[split], self.labels[split] = _devices(images[pool], digits.target[pool],
                                                               self.devices_per_split, self.images_per_device, rng)

    # the six methods of duet.Task
    def build_model(self) -> nn.Module:
        return duet.personalize(DigitNet(self.width), duet.SlotConfig(target_modules=["mix", "norm", "classifier"]))

    def devices(self, split):
        return np.arange(self.devices_per_split)

    def context(self, devices, split):
        split = "test" if split == "finetune" else split
        images = torch.from_numpy(self.images[split][np.asarray(devices), : self.context_images, None])
        return duet.Samples({"images": images}, torch.ones(images.shape[:2], dtype=torch.bool))

    def batches(self, split, *, device=None, rng=None, batch_size=None):
        source = "test" if split == "finetune" else split
        devices = self.devices(split) if device is None else np.array([device])
        labeled = slice(self.context_images, None)
        if split in ("finetune", "test"):  # a test device's labeled images: fine-tuning's half, then the test's
            middle = self.context_images + (self.images_per_device - self.context_images) // 2
            labeled = slice(self.context_images, middle) if split == "finetune" else slice(middle, None)
        if rng is not None:
            devices = rng.permutation(devices)
        per_batch = max(1, (batch_size or 256) // self.images_per_device)
        for start in range(0, len(devices), per_batch):
            rows = devices[start : start + per_batch]
            images = self.images[source][rows, labeled]
            yield duet.Batch(inputs=(torch.from_numpy(images.reshape(-1, 1, 8, 8)),),
                             targets=torch.from_numpy(self.labels[source][rows, labeled].reshape(-1)),
                             devices=rows)

    def loss(self, outputs, batch):
        return F.cross_entropy(outputs, batch.targets)

    def metrics(self, outputs, targets, devices):
        return {"accuracy": float((outputs.argmax(-1) == targets).mean())}


def _devices(images: np.ndarray, labels: np.ndarray, count: int, size: int, rng: np.random.Generator):
    """`count` devices of `size` images each: a skewed mix of digits, then one slant, contrast and noise level."""
    device_images = np.empty((count, size, 8, 8), np.float32)
    device_labels = np.empty((count, size), np.int64)
    by_label = [np.flatnonzero(labels == d) for d in range(10)]
    for device in range(count):
        mix = rng.dirichlet(np.full(10, 0.5))
        chosen = np.array([rng.choice(by_label[d]) for d in rng.choice(10, size, p=mix)])
        slant, contrast, noise = rng.uniform(-0.25, 0.25), rng.uniform(0.5, 1.5), rng.uniform(0, 0.15)
        rows = np.arange(8)[:, None]
        shifted = np.stack([_shear(images[i], slant, rows) for i in chosen])
        device_images[device] = np.clip(shifted * contrast + rng.normal(0, noise, shifted.shape), 0, 1)
        device_labels[device] = labels[chosen]
    return device_images, device_labels


def _shear(image: np.ndarray, slant: float, rows: np.ndarray) -> np.ndarray:
    """Shift each row sideways in proportion to its height: a slanted hand."""
    cols = np.clip(np.round(np.arange(8)[None, :] + slant * (rows - 3.5)).astype(int), 0, 7)
    return image[np.broadcast_to(rows, (8, 8)), cols]
