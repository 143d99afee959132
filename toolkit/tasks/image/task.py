"""Image classification task: simulated digit devices, a small CNN, a classifier head generated from K unlabeled images."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from toolkit.data.digits import DigitsDeviceConfig, DigitsDevices, simulate_devices
from toolkit.errors import ConfigError
from toolkit.tasks.metrics import classification_metrics
from toolkit.protocol.slots import TensorSpec
from toolkit.tasks.base import Batch, SampleSpec, Samples, Task
from toolkit.tasks.image.model import DigitCNN, ImageModelConfig

DRIFT_STREAM = 24  # the drifted images' random stream: seeded with (devices.seed, this)


@dataclass(frozen=True)
class ImageTaskConfig:
    """Everything that rebuilds the image task and its model; saved in config.json."""

    dataset: str = "digits"  # scikit-learn's handwritten digits, the only embedded image data
    devices: DigitsDeviceConfig = field(default_factory=DigitsDeviceConfig)
    model: ImageModelConfig = field(default_factory=ImageModelConfig)
    episodes_per_epoch: int = 4  # times each training device is visited per epoch
    fresh_devices: bool = True  # every episode draws a new device (label mix, style) over the training digits
    drift_after: int = 0  # > 0: validation and test devices change inside their test period: from this image on, a
    # new writing style and label mix (drawn apart, so training devices and the default runs are untouched)

    @staticmethod
    def from_json(obj: Mapping[str, Any]) -> "ImageTaskConfig":
        devices = dict(obj["devices"])
        if "val_devices" not in devices:  # a run made before it: validation carved from train, first simulation
            devices.update(val_devices=0, simulation_version=1)
        devices["contrast_range"] = tuple(devices["contrast_range"])
        devices["thickness_levels"] = tuple(devices["thickness_levels"])
        model = dict(obj["model"])
        model["channels"] = tuple(model["channels"])
        return ImageTaskConfig(obj["dataset"], DigitsDeviceConfig(**devices), ImageModelConfig(**model),
                               obj.get("episodes_per_epoch", 4), obj.get("fresh_devices", False),
                               obj.get("drift_after", 0))


class ImageTask(Task):
    """Digit classification on simulated devices; the first K images of a device are its unlabeled context."""

    name = "image"
    selection_metric = "accuracy"
    # chosen on the 200 validation devices of a drifting run (drift_after=40): at 10 and 20 requests per 100 images, a
    # window of 10 images scored 0.9703 / 0.9706 accuracy, 5 images 0.9696 / 0.9691, 16 images 0.9699 / 0.9704
    trigger_window = 10

    def __init__(self, cfg: ImageTaskConfig, cache_dir: Path | None = None):
        if cfg.dataset != "digits":
            raise ConfigError(f"unknown image dataset {cfg.dataset!r}; the embedded one is 'digits'")
        devices = cfg.devices
        if not 0 < devices.context_images < devices.images_per_device:
            raise ConfigError("context_images must be between 1 and images_per_device - 1")
        if cfg.drift_after and not devices.context_images < cfg.drift_after < devices.images_per_device:
            raise ConfigError(f"drift_after must be 0 (no drift) or inside the test period, between context_images "
                              f"({devices.context_images}) and images_per_device ({devices.images_per_device}), "
                              f"found {cfg.drift_after}")
        self.cfg = cfg
        self.data: DigitsDevices = simulate_devices(devices)
        if cfg.drift_after:
            self._drift(cfg.drift_after)
        if devices.val_devices:  # (source split, device rows) of each split
            self._splits = {"train": ("train", np.arange(devices.train_devices)),
                            "val": ("val", np.arange(devices.val_devices))}
        else:
            n_val = max(1, devices.train_devices // 10)
            self._splits = {"train": ("train", np.arange(devices.train_devices - n_val)),
                            "val": ("train", np.arange(devices.train_devices - n_val, devices.train_devices))}
        self._splits["test"] = ("test", np.arange(devices.test_devices))
        self._splits["finetune"] = self._splits["test"]

    @staticmethod
    def base_signature_of(config_json: Mapping[str, Any]) -> dict[str, Any]:
        """The whole saved config, with the values a run saved before a newer field existed was made with."""
        return asdict(ImageTaskConfig.from_json(config_json))

    @classmethod
    def from_config_json(cls, obj: Mapping[str, Any], cache_dir: Path | None = None) -> "ImageTask":
        return cls(ImageTaskConfig.from_json(obj), cache_dir)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], cache_dir: Path | None = None) -> "ImageTask":
        from toolkit.registry import backbone_class, default_backbone

        backbone = options.get("backbone") or default_backbone(cls.name)
        backbone_class(cls.name, backbone)  # ConfigError for a backbone of another task
        devices = DigitsDeviceConfig(seed=options.get("seed", 0), **{
            k: options[k] for k in ("train_devices", "test_devices", "context_images") if k in options})
        return cls(ImageTaskConfig(dataset=options.get("dataset") or "digits", devices=devices,
                                   model=ImageModelConfig(backbone=backbone),
                                   episodes_per_epoch=options.get("episodes_per_epoch", 4),
                                   fresh_devices=options.get("fresh_devices", True),
                                   drift_after=int(options.get("drift_after") or 0)), cache_dir)

    def config_json(self) -> dict:
        return asdict(self.cfg)

    def build_model(self) -> DigitCNN:
        from toolkit.registry import backbone_class

        return backbone_class(self.name, self.cfg.model.backbone).personalized(self.cfg.model)

    @property
    def k(self) -> int:
        return self.cfg.devices.context_images

    def _arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        source, rows = self._splits[split]
        return self.data.images[source][rows], self.data.labels[source][rows]

    def train_defaults(self) -> dict[str, Any]:
        # Chosen on the validation devices: a frozen backbone learned best here, and a patience of 10 (validation
        # accuracy moves by ~0.005 from epoch to epoch). With a new device every episode nothing overfits, and
        # Base was still improving at 30 epochs, hence 60.
        from toolkit.registry import backbone_class

        backbone = backbone_class(self.name, self.cfg.model.backbone)
        return {"max_epochs": 60, "patience": 10, "generator_lr": 1e-3, "backbone_lr": 0.0, **backbone.train_defaults}

    def finetune_defaults(self) -> dict[str, Any]:
        return {"lr": 1e-3, "epochs": 5, "batch_size": self.k}

    # -- devices, their samples, batches ---------------------------------------------------------------------------
    def devices(self, split: str) -> np.ndarray:
        return np.arange(len(self._splits[split][1]))

    def context(self, devices, split: str) -> Samples:
        """Each device's first K images, unlabeled: (devices, K, 1, side, side)."""
        images, _ = self._arrays(split)
        return _images_context(images[np.asarray(devices, dtype=np.int64), : self.k])

    def batches(self, split: str, *, device: int | None = None, rng: np.random.Generator | None = None,
                batch_size: int | None = None) -> Iterator[Batch]:
        """train: episodes, a device's images shuffled, K of them its context and all of them labeled queries;
        finetune: a test device's K context images with their labels (what the baseline may use and DUET never
        sees); val and test: each device's images after its first K, in one batch."""
        if split == "train":
            yield from self._episodes(rng if rng is not None else np.random.default_rng(0), batch_size or 256)
        elif split == "finetune":
            yield from self._support(device, rng if rng is not None else np.random.default_rng(0),
                                     batch_size or self.k)
        else:
            images, labels = self._arrays(split)
            rows = np.arange(len(images)) if device is None else np.array([device])
            yield Batch((_flat(images[rows, self.k :]),), torch.from_numpy(labels[rows, self.k :].reshape(-1)), rows)

    def _drift(self, after: int) -> None:
        """Held-out devices (validation and test) drift: their images from `after` on are those of a new device over
        the same digits, with its own style and label mix. Drawn from a random stream of their own, so that every other
        image, and training, is what it is without drift."""
        from toolkit.data.digits import draw_devices

        rng = np.random.default_rng([self.cfg.devices.seed, DRIFT_STREAM])
        held_out = np.setdiff1d(np.arange(len(self.data.pool_labels)), self.data.train_pool)
        for source, pool in (("test", held_out), ("val", self.data.train_pool)):
            if source in self.data.images:
                images, labels = self.data.images[source], self.data.labels[source]
                new_images, new_labels, _ = draw_devices(self.data.pool_images, self.data.pool_labels, pool,
                                                         len(images), self.cfg.devices, rng)
                images[:, after:], labels[:, after:] = new_images[:, after:], new_labels[:, after:]

    # -- refreshed slots ----------------------------------------------------------------------------------------------
    def stream(self, split: str, *, device: int | None = None) -> Iterator[Batch]:
        """One batch per device: its images after the first K, one per row in order, each with the K images before it
        as its context (at the first row, the device's context as the split begins)."""
        images, labels = self._arrays(split)
        window = np.arange(images.shape[1] - self.k)[:, None] + np.arange(self.k)[None, :]  # rows' context indices
        for row in range(len(images)) if device is None else [device]:
            yield Batch((_flat(images[row, self.k :][None]),), torch.from_numpy(labels[row, self.k :]),
                        np.full(images.shape[1] - self.k, row), _images_context(images[row][window]))

    def finetune_batches(self, device: int, *, seen: int = 0, rng: np.random.Generator,
                         batch_size: int | None = None) -> Iterator[Batch]:
        """The K context images and the first `seen` test images, with their labels, shuffled, in batches of K."""
        if not seen:
            yield from self.batches("finetune", device=device, rng=rng, batch_size=batch_size)
            return
        images, labels = self._arrays("finetune")
        order = rng.permutation(min(self.k + seen, images.shape[1]))
        size = batch_size or self.k
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            yield Batch((_flat(images[device, rows][None]),), torch.from_numpy(labels[device, rows]),
                        np.array([device]))

    def _episodes(self, rng: np.random.Generator, batch_size: int) -> Iterator[Batch]:
        images, labels = self._arrays("train")
        devices_per_batch = max(1, batch_size // images.shape[1])
        visits = np.concatenate([rng.permutation(len(images)) for _ in range(self.cfg.episodes_per_epoch)])
        if self.cfg.fresh_devices:  # as many episodes, each on a new device (visits is still drawn above, so the
            # README's runs keep their random stream)
            images, labels = self.data.draw_training_devices(len(visits), rng)
            visits = np.arange(len(visits))
        for start in range(0, len(visits), devices_per_batch):
            rows = visits[start : start + devices_per_batch]
            order = np.argsort(rng.random((len(rows), images.shape[1])), axis=1)
            shuffled = np.take_along_axis(images[rows], order[..., None, None], 1)
            shuffled_labels = np.take_along_axis(labels[rows], order, 1)
            yield Batch((_flat(shuffled),), torch.from_numpy(shuffled_labels.reshape(-1)), rows,
                        _images_context(shuffled[:, : self.k]))

    def _support(self, device: int, rng: np.random.Generator, batch_size: int) -> Iterator[Batch]:
        images, labels = self._arrays("finetune")
        order = rng.permutation(self.k)
        for start in range(0, self.k, batch_size):
            rows = order[start : start + batch_size]
            yield Batch((_flat(images[device, rows][None]),), torch.from_numpy(labels[device, rows]),
                        np.array([device]))

    # -- loss and metrics -------------------------------------------------------------------------------------------
    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(outputs, batch.targets.to(outputs.device))

    def metrics(self, outputs: np.ndarray, targets: np.ndarray, devices: np.ndarray) -> dict[str, float]:
        return classification_metrics(targets, outputs, devices)

    def shifted_devices(self, fraction: float) -> np.ndarray:
        """Test devices whose images sit farthest from the cloud's training images.

        Shift = L2 distance between the device's mean image and the mean image of all training devices
        (model-free); the top `fraction` of devices by shift is returned.
        """
        train_mean = self.data.images["train"].mean(axis=(0, 1))
        images, _ = self._arrays("test")
        shift = np.linalg.norm((images.mean(axis=1) - train_mean).reshape(len(images), -1), axis=1)
        count = max(1, int(round(len(images) * fraction)))
        return np.sort(np.argsort(-shift, kind="stable")[:count])

    # -- the generator's input and the wire -------------------------------------------------------------------------
    def context_vectors(self, model: DigitCNN, samples: Samples) -> torch.Tensor:
        """Per context image: its embedding and the Base head's class probabilities (which let the generator
        estimate the device's label mix from unlabeled images)."""
        features = model.embed(samples.fields["images"])
        return torch.cat([features, model.head(features).softmax(-1)], -1)

    def context_specs(self) -> list[SampleSpec]:
        side = self.cfg.model.image_side
        return [SampleSpec("images", (1, side, side), "float32", 0, 1,
                           f"the device's most recent unlabeled images, each {side}x{side} grey values in [0, 1], "
                           f"row-major, flattened to {side * side} numbers")]

    def context_size(self) -> int:
        return self.k

    # -- the device program -----------------------------------------------------------------------------------------
    def export_shape_defaults(self) -> dict[str, int]:
        return {"batch": self.cfg.devices.images_per_device - self.k}

    def program_specs(self, model: DigitCNN, export_shape: Mapping[str, int]) -> tuple[list[TensorSpec], TensorSpec]:
        batch, cfg = int(export_shape["batch"]), self.cfg.model
        return ([TensorSpec("images", (batch, 1, cfg.image_side, cfg.image_side), "float32",
                            "grey images with values in [0, 1]")],
                TensorSpec("logits", (batch, cfg.n_classes), "float32",
                           "class logits per image (softmax = class probabilities)"))


def _flat(images: np.ndarray) -> torch.Tensor:
    """(devices, n, side, side) images -> (devices * n, 1, side, side), a device's images consecutive."""
    return torch.from_numpy(np.ascontiguousarray(images.reshape(-1, 1, *images.shape[-2:])))


def _images_context(images: np.ndarray) -> Samples:
    """(devices, K, side, side) images, all present -> Samples with one field, (devices, K, 1, side, side)."""
    tensor = torch.from_numpy(np.ascontiguousarray(images[:, :, None]))
    return Samples({"images": tensor}, torch.ones(tensor.shape[:2], dtype=torch.bool))
