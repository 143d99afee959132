"""Simulated devices over scikit-learn's handwritten digits: per-device label skew and writing style, seeded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


IMAGE_SIDE = 8
N_CLASSES = 10


@dataclass(frozen=True)
class DigitsDeviceConfig:
    """How devices are simulated; saved with every image run."""

    train_devices: int = 300  # devices whose data the cloud trains on
    test_devices: int = 60  # held-out devices (disjoint devices, and drawn from held-out images)
    val_devices: int = 200  # validation devices, new ones over the training digits (0: the last tenth of the
    # training devices, as runs made before this option)
    images_per_device: int = 64  # images each device holds
    context_images: int = 16  # K: unlabeled recent images the generator reads (the labeled set for fine-tuning)
    dirichlet_alpha: float = 0.5  # label skew per device (smaller = more skewed)
    max_rotation: float = 35.0  # degrees; each device rotates by one angle drawn from +-max_rotation
    contrast_range: tuple[float, float] = (0.5, 1.5)  # each device scales intensities by one factor in this range
    max_noise: float = 0.15  # each device adds Gaussian noise with a std drawn from [0, max_noise]
    thickness_levels: tuple[int, ...] = (-1, 0, 1)  # stroke thinning (-1), none (0) or thickening (+1)
    holdout_fraction: float = 0.3  # share of the 1,797 digit images reserved for held-out devices
    seed: int = 0  # seeds the whole simulation
    simulation_version: int = 2  # 2: one random draw per device picks its images; 1: one per image (runs made
    # before val_devices existed: they load with the devices they were trained and scored on)


@dataclass
class DeviceStyle:
    rotation: float
    contrast: float
    noise: float
    thickness: int


@dataclass
class DigitsDevices:
    """Images (n_devices, images_per_device, 8, 8) in [0, 1] with labels, for train, test (and val) devices."""

    config: DigitsDeviceConfig
    images: dict[str, np.ndarray]  # split -> (n_devices, n_images, 8, 8) float32
    labels: dict[str, np.ndarray]  # split -> (n_devices, n_images) int64
    styles: dict[str, list[DeviceStyle]]
    pool_images: np.ndarray  # (1797, 8, 8) the digits every device is drawn from
    pool_labels: np.ndarray  # (1797,)
    train_pool: np.ndarray  # indices of the digits training devices use (held-out devices never see them)

    def draw_training_devices(self, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """`count` new devices over the training digits, each with a new label mix and writing style:
        (count, images_per_device, 8, 8) images and their labels."""
        images, labels, _ = draw_devices(self.pool_images, self.pool_labels, self.train_pool, count, self.config, rng)
        return images, labels


def load_digit_pool() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 scikit-learn digits as (n, 8, 8) float32 in [0, 1] and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


def simulate_devices(cfg: DigitsDeviceConfig) -> DigitsDevices:
    images, labels = load_digit_pool()
    rng = np.random.default_rng(cfg.seed)
    pools = split_pools(labels, cfg, rng)
    counts = {"train": cfg.train_devices, "test": cfg.test_devices, "val": cfg.val_devices}
    out_images, out_labels, out_styles = {}, {}, {}
    for split in ("train", "test", "val"):  # val last: train and test devices do not depend on it
        if counts[split]:
            out_images[split], out_labels[split], out_styles[split] = draw_devices(
                images, labels, pools["test" if split == "test" else "train"], counts[split], cfg, rng)
    return DigitsDevices(cfg, out_images, out_labels, out_styles, images, labels, pools["train"])


def split_pools(labels: np.ndarray, cfg: DigitsDeviceConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Indices of the digit images each split draws from: held-out devices never see a training image."""
    order = rng.permutation(len(labels))
    n_holdout = int(round(len(labels) * cfg.holdout_fraction))
    return {"test": order[:n_holdout], "train": order[n_holdout:]}


def draw_devices(images: np.ndarray, labels: np.ndarray, pool: np.ndarray, count: int, cfg: DigitsDeviceConfig,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[DeviceStyle]]:
    """`count` devices from the images of `pool`, each with its own label mix and writing style."""
    by_class = [pool[labels[pool] == c] for c in range(N_CLASSES)]
    flat = np.concatenate(by_class)
    sizes = np.array([len(members) for members in by_class])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    out_images = np.empty((count, cfg.images_per_device, IMAGE_SIDE, IMAGE_SIDE), np.float32)
    out_labels = np.empty((count, cfg.images_per_device), np.int64)
    styles = []
    for device in range(count):
        mix = rng.dirichlet(np.full(N_CLASSES, cfg.dirichlet_alpha))
        classes = rng.choice(N_CLASSES, size=cfg.images_per_device, p=mix)
        if cfg.simulation_version == 1:
            chosen = np.array([rng.choice(by_class[c]) for c in classes])
        else:
            chosen = flat[starts[classes] + (rng.random(len(classes)) * sizes[classes]).astype(np.int64)]
        style = DeviceStyle(
            rotation=float(rng.uniform(-cfg.max_rotation, cfg.max_rotation)),
            contrast=float(rng.uniform(*cfg.contrast_range)),
            noise=float(rng.uniform(0, cfg.max_noise)),
            thickness=int(rng.choice(cfg.thickness_levels)),
        )
        out_images[device] = apply_style(images[chosen], style, rng)
        out_labels[device] = labels[chosen]
        styles.append(style)
    return out_images, out_labels, styles


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
