"""Image classification task: simulated digit devices, a small CNN, a classifier head generated from K unlabeled images."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from toolkit.data.digits import DigitsDeviceConfig, DigitsDevices, simulate_devices
from toolkit.export.program import DeviceModel, TensorSpec
from toolkit.errors import ConfigError, RequestError
from toolkit.tasks.metrics import classification_metrics
from toolkit.tasks.image.model import DigitCNN, ImageModelConfig
from toolkit.tasks.base import DeviceContext, Task, torch_device_of


@dataclass(frozen=True)
class ImageTaskConfig:
    """Everything that rebuilds the image task and its model; saved in config.json."""

    dataset: str = "digits"  # scikit-learn's handwritten digits, the only embedded image data
    devices: DigitsDeviceConfig = field(default_factory=DigitsDeviceConfig)
    model: ImageModelConfig = field(default_factory=ImageModelConfig)
    episodes_per_epoch: int = 4  # times each training device is visited per epoch
    fresh_devices: bool = True  # every episode draws a new device (label mix, style) over the training digits

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
                               obj.get("episodes_per_epoch", 4), obj.get("fresh_devices", False))


@dataclass
class ImageBatch:
    context: np.ndarray  # (B, K, side, side) a device's unlabeled recent images
    images: np.ndarray  # (B, Q, side, side) the same devices' labeled images
    labels: np.ndarray  # (B, Q)


class ImageTask(Task):
    """Digit classification on simulated devices; the first K images of a device are its unlabeled context."""

    name = "image"
    metric_names = ("accuracy", "macro_f1")
    selection_metric = "accuracy"

    def __init__(self, cfg: ImageTaskConfig, cache_dir: Path | None = None):
        if cfg.dataset != "digits":
            raise ConfigError(f"unknown image dataset {cfg.dataset!r}; the embedded one is 'digits'")
        devices = cfg.devices
        if not 0 < devices.context_images < devices.images_per_device:
            raise ConfigError("context_images must be between 1 and images_per_device - 1")
        self.cfg = cfg
        self.data: DigitsDevices = simulate_devices(devices)
        if devices.val_devices:  # (source split, device rows) of each split
            self._splits = {"train": ("train", np.arange(devices.train_devices)),
                            "val": ("val", np.arange(devices.val_devices))}
        else:
            n_val = max(1, devices.train_devices // 10)
            self._splits = {"train": ("train", np.arange(devices.train_devices - n_val)),
                            "val": ("train", np.arange(devices.train_devices - n_val, devices.train_devices))}
        self._splits["test"] = ("test", np.arange(devices.test_devices))

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
                                   fresh_devices=options.get("fresh_devices", True)), cache_dir)

    def config_json(self) -> dict:
        return asdict(self.cfg)

    def build_model(self) -> DigitCNN:
        from toolkit.registry import backbone_class

        return backbone_class(self.name, self.cfg.model.backbone)(self.cfg.model)

    @property
    def k(self) -> int:
        return self.cfg.devices.context_images

    def _arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        source, rows = self._splits[split]
        return self.data.images[source][rows], self.data.labels[source][rows]

    # -- training ----------------------------------------------------------------------------------
    def train_defaults(self) -> dict[str, Any]:
        # Chosen on the validation devices: a frozen backbone learned best here, and a patience of 10 (validation
        # accuracy moves by ~0.005 from epoch to epoch). With a new device every episode nothing overfits, and
        # Base was still improving at 30 epochs, hence 60.
        from toolkit.registry import backbone_class

        backbone = backbone_class(self.name, self.cfg.model.backbone)
        return {"max_epochs": 60, "patience": 10, "generator_lr": 1e-3, "backbone_lr": 0.0, **backbone.train_defaults}

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[ImageBatch]:
        """Episodes: each device's images shuffled; K become the context, the rest the labeled queries."""
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
            yield ImageBatch(shuffled[:, : self.k], shuffled, shuffled_labels)

    def batch_loss(self, model: DigitCNN, batch: ImageBatch, generator) -> torch.Tensor:
        head = None
        if generator is not None:
            context = self._context(model, batch.context)
            head = generator(context.vectors, context.mask, list(model.head.params))
        torch_device = torch_device_of(model)
        logits = model(torch.from_numpy(batch.images).to(torch_device), head)
        labels = torch.from_numpy(batch.labels).to(torch_device)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))

    def _context(self, model: DigitCNN, images: np.ndarray) -> DeviceContext:
        tensor = torch.as_tensor(images, dtype=torch.float32, device=torch_device_of(model))
        mask = torch.ones(tensor.shape[:2], dtype=torch.bool, device=tensor.device)
        return DeviceContext(*model.context(tensor, mask))

    # -- evaluation --------------------------------------------------------------------------------
    def device_ids(self, split: str) -> np.ndarray:
        return np.arange(len(self._splits[split][1]))

    def device_context(self, model: DigitCNN, device: int, split: str) -> DeviceContext:
        images, _ = self._arrays(split)
        return self._context(model, images[device : device + 1, : self.k])

    def _split_logits(self, model: DigitCNN, split: str, generator) -> np.ndarray:
        """Logits (n_devices, n_query, classes) of each device's query images (all but its first K)."""
        images, _ = self._arrays(split)
        model.eval()
        with torch.no_grad():
            head = None
            if generator is not None:
                generator.eval()
                context = self._context(model, images[:, : self.k])
                head = generator(context.vectors, context.mask, list(model.head.params))
            return model(torch.from_numpy(images[:, self.k :]).to(torch_device_of(model)), head).cpu().numpy()

    def evaluate(self, model: DigitCNN, split: str, generator) -> dict[str, float]:
        logits = self._split_logits(model, split, generator)
        return self.metrics_from_scores(dict(enumerate(logits)), None, split)

    def test_scores(self, model: DigitCNN, generator) -> dict[int, np.ndarray]:
        return dict(enumerate(self._split_logits(model, "test", generator)))

    def metrics_from_scores(self, scores: Mapping[int, np.ndarray], devices: np.ndarray | None = None,
                            split: str = "test") -> dict[str, float]:
        _, labels = self._arrays(split)
        chosen = sorted(scores) if devices is None else [int(d) for d in devices]
        return classification_metrics(np.concatenate([labels[d, self.k :] for d in chosen]),
                                      np.concatenate([scores[d] for d in chosen]),
                                      np.repeat(chosen, labels.shape[1] - self.k))

    def finetune_defaults(self) -> dict[str, Any]:
        return {"lr": 1e-3, "epochs": 5, "batch_size": self.k}

    def finetune_batches(self, device: int, settings: Mapping[str, Any]) -> Iterator[tuple]:
        """The device's K context images with their labels (the baseline may use the labels DUET never sees)."""
        images, labels = self._arrays("test")
        support = torch.from_numpy(images[device, : self.k])
        support_labels = torch.from_numpy(labels[device, : self.k])
        torch.manual_seed(settings["seed"] * 100003 + device)
        for _ in range(settings["epochs"]):
            order = torch.randperm(self.k)
            for start in range(0, self.k, settings["batch_size"]):
                rows = order[start : start + settings["batch_size"]]
                yield support[rows], support_labels[rows]

    def finetune_loss(self, model: DigitCNN, batch: tuple) -> torch.Tensor:
        torch_device = torch_device_of(model)
        images, labels = batch
        return F.cross_entropy(model(images.to(torch_device)), labels.to(torch_device))

    def device_test_scores(self, model: DigitCNN, device: int) -> np.ndarray:
        images, _ = self._arrays("test")
        model.eval()
        with torch.no_grad():
            return model(torch.from_numpy(images[device, self.k :]).to(torch_device_of(model))).cpu().numpy()

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

    # -- the wire -----------------------------------------------------------------------------------
    def request_schema(self) -> dict:
        side = self.cfg.model.image_side
        return {
            "type": "object",
            "additionalProperties": False,
            "required": ["device_id", "images"],
            "properties": {
                "device_id": {"type": "string", "minLength": 1, "maxLength": 128},
                "images": {
                    "type": "array", "minItems": 1, "maxItems": self.k,
                    "description": f"the device's most recent unlabeled images, each {side}x{side} grey values "
                                   f"in [0, 1], row-major, flattened to {side * side} numbers",
                    "items": {"type": "array", "minItems": side * side, "maxItems": side * side,
                              "items": {"type": "number", "minimum": 0, "maximum": 1}},
                },
            },
        }

    def request_inputs(self, payloads: list[Mapping[str, Any]]) -> tuple[torch.Tensor, ...]:
        """(images (B, K, side, side) float32, right-aligned and zero-padded; mask (B, K) bool)."""
        side = self.cfg.model.image_side
        batch = np.zeros((len(payloads), self.k, side, side), np.float32)
        mask = np.zeros((len(payloads), self.k), bool)
        for row, payload in enumerate(payloads):
            images = payload.get("images")
            if isinstance(images, np.ndarray):  # from a binary body: a (n, side * side) float tensor
                if images.ndim != 2 or images.dtype.kind != "f" or images.shape[1] != side * side:
                    raise RequestError(f"'images' must be an (n, {side * side}) float tensor (F32 or F64), got "
                                       f"{images.dtype} of shape {list(images.shape)}")
                images = list(images)
            if not isinstance(images, list) or not images:
                raise RequestError("'images' must be a non-empty list of images")
            if len(images) > self.k:
                raise RequestError(f"'images' has {len(images)} images; at most {self.k} are read")
            for i, image in enumerate(images):
                if isinstance(image, np.ndarray):
                    pass  # a row of a float tensor: numbers of the right count
                elif not isinstance(image, list) or len(image) != side * side:
                    raise RequestError(f"'images[{i}]' must be a list of {side * side} numbers ({side}x{side})")
                elif any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in image):
                    raise RequestError(f"'images[{i}]' must hold only numbers")
                values = np.asarray(image, dtype=np.float64)
                if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
                    raise RequestError(f"'images[{i}]' values must lie in [0, 1]")
                batch[row, self.k - len(images) + i] = values.reshape(side, side)
            mask[row, self.k - len(images) :] = True
        return torch.from_numpy(batch), torch.from_numpy(mask)

    def example_request(self, device: int) -> dict:
        images, _ = self._arrays("test")
        return {"device_id": f"digits-device-{device}",
                "images": [[round(float(v), 4) for v in img.ravel()] for img in images[device, : self.k]]}

    # -- the device program -------------------------------------------------------------------------
    def export_shape_defaults(self) -> dict[str, int]:
        return {"batch": self.cfg.devices.images_per_device - self.k}

    def device_model(self, model: DigitCNN, export_shape: Mapping[str, int]) -> "ImageDeviceModel":
        return ImageDeviceModel(model, int(export_shape["batch"]))

    def device_eval_calls(self, split: str, export_shape: Mapping[str, int]):
        """One program call per chunk of a device's query images (the last chunk padded with blanks)."""
        batch = int(export_shape["batch"])
        images, labels = self._arrays(split)
        for device in range(len(images)):
            query, query_labels = images[device, self.k :], labels[device, self.k :]
            for start in range(0, len(query), batch):
                chunk = query[start : start + batch]
                padded = np.zeros((batch, 1, *chunk.shape[1:]), np.float32)
                padded[: len(chunk), 0] = chunk
                yield device, (padded,), query_labels[start : start + batch]

    def metrics_from_device_calls(self, calls: list[tuple[int, Any, np.ndarray]]) -> dict[str, float]:
        devices = np.concatenate([np.full(len(labels), device) for device, labels, _ in calls])
        labels = np.concatenate([labels for _, labels, _ in calls])
        logits = np.concatenate([output[: len(lab)] for _, lab, output in calls])
        return classification_metrics(labels, logits, devices)


class ImageDeviceModel(DeviceModel):
    """forward(images (N, 1, side, side) float32, *slots) -> logits (N, classes)."""

    def __init__(self, model: DigitCNN, batch: int):
        super().__init__()
        self.model = copy.deepcopy(model).eval()
        cfg = model.cfg
        self.batch = batch
        self.input_specs = [TensorSpec("images", (batch, 1, cfg.image_side, cfg.image_side), "float32",
                                       "grey images with values in [0, 1]")]
        self.slot_specs = model.slot_specs
        self.output_spec = TensorSpec("logits", (batch, cfg.n_classes), "float32",
                                      "class logits per image (softmax = class probabilities)")

    def forward(self, images, *slots):
        return self.model(images[:, 0], list(slots))

    def example_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(seed)
        side = self.model.cfg.image_side
        return (torch.rand(self.batch, 1, side, side, generator=g),)
