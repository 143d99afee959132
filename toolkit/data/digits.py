"""Simulated devices over scikit-learn's handwritten digits: per-device label skew and writing style, seeded."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

IMAGE_SIDE = 8
N_CLASSES = 10


@dataclass(frozen=True)
class DigitsDeviceConfig:
    """How devices are simulated; saved with every image run."""

    train_devices: int = 300  # devices whose data the cloud trains on
    test_devices: int = 60  # held-out devices (disjoint devices, and drawn from held-out images)
    images_per_device: int = 64  # images each device holds
    context_images: int = 16  # K: unlabeled recent images the generator reads (the labeled set for fine-tuning)
    dirichlet_alpha: float = 0.5  # label skew per device (smaller = more skewed)
    max_rotation: float = 35.0  # degrees; each device rotates by one angle drawn from +-max_rotation
    contrast_range: tuple[float, float] = (0.5, 1.5)  # each device scales intensities by one factor in this range
    max_noise: float = 0.15  # each device adds Gaussian noise with a std drawn from [0, max_noise]
    thickness_levels: tuple[int, ...] = (-1, 0, 1)  # stroke thinning (-1), none (0) or thickening (+1)
    holdout_fraction: float = 0.3  # share of the 1,797 digit images reserved for held-out devices
    seed: int = 0  # seeds the whole simulation


@dataclass
class DeviceStyle:
    rotation: float
    contrast: float
    noise: float
    thickness: int


@dataclass
class DigitsDevices:
    """Images (n_devices, images_per_device, 8, 8) in [0, 1] with labels, for train and test devices."""

    config: DigitsDeviceConfig
    images: dict[str, np.ndarray]  # split -> (n_devices, n_images, 8, 8) float32
    labels: dict[str, np.ndarray]  # split -> (n_devices, n_images) int64
    styles: dict[str, list[DeviceStyle]]


def load_digit_pool() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 scikit-learn digits as (n, 8, 8) float32 in [0, 1] and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


def simulate_devices(cfg: DigitsDeviceConfig) -> DigitsDevices:
    images, labels = load_digit_pool()
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(images))
    n_holdout = int(round(len(images) * cfg.holdout_fraction))
    pools = {"test": order[:n_holdout], "train": order[n_holdout:]}
    counts = {"train": cfg.train_devices, "test": cfg.test_devices}
    out_images, out_labels, out_styles = {}, {}, {}
    for split in ("train", "test"):
        pool = pools[split]
        by_class = [pool[labels[pool] == c] for c in range(N_CLASSES)]
        split_images = np.empty((counts[split], cfg.images_per_device, IMAGE_SIDE, IMAGE_SIDE), np.float32)
        split_labels = np.empty((counts[split], cfg.images_per_device), np.int64)
        styles = []
        for device in range(counts[split]):
            mix = rng.dirichlet(np.full(N_CLASSES, cfg.dirichlet_alpha))
            classes = rng.choice(N_CLASSES, size=cfg.images_per_device, p=mix)
            chosen = np.array([rng.choice(by_class[c]) for c in classes])
            style = DeviceStyle(
                rotation=float(rng.uniform(-cfg.max_rotation, cfg.max_rotation)),
                contrast=float(rng.uniform(*cfg.contrast_range)),
                noise=float(rng.uniform(0, cfg.max_noise)),
                thickness=int(rng.choice(cfg.thickness_levels)),
            )
            split_images[device] = apply_style(images[chosen], style, rng)
            split_labels[device] = labels[chosen]
            styles.append(style)
        out_images[split], out_labels[split], out_styles[split] = split_images, split_labels, styles
    return DigitsDevices(cfg, out_images, out_labels, out_styles)


def apply_style(images: np.ndarray, style: DeviceStyle, rng: np.random.Generator) -> np.ndarray:
    """A device's writing style: stroke thickness, rotation, contrast, then sensor noise; clipped to [0, 1]."""
    from scipy import ndimage

    out = images
    if style.thickness > 0:
        out = ndimage.grey_dilation(out, size=(1, 2, 2))
    elif style.thickness < 0:
        out = ndimage.grey_erosion(out, size=(1, 2, 1)) * 0.5 + out * 0.5
    out = ndimage.rotate(out, style.rotation, axes=(1, 2), reshape=False, order=1, mode="constant")
    out = out * style.contrast + rng.normal(0, style.noise, size=out.shape)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
