"""A model the toolkit has never seen, personalised through the public API alone (`import toolkit as duet`): slots on
a convolution, a LayerNorm and a linear layer; Base and DUET trained for an epoch on a tiny data set this test makes;
evaluated; exported to ExecuTorch, LiteRT and Core ML with parity; served by `cli.py serve`; a device's slots fetched,
checked and run by the Python client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import toolkit as duet
from service_fixtures import free_port, start_cli_serve

REPO = Path(__file__).resolve().parents[1]


class StripeNet(nn.Module):
    """Three classes of 6x6 images: conv, conv, LayerNorm, linear classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.conv = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm(6)
        self.head = nn.Linear(6, 3)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = F.relu(self.conv(F.relu(self.stem(images)))).mean(dim=(2, 3))
        return self.head(self.norm(features))


@dataclass
class StripeDevices(duet.Task):
    """Devices whose images show a horizontal stripe at one of three heights (the label), each device with its own
    brightness and contrast; a device's first 4 images are its unlabeled context."""

    devices_per_split: int = 6
    images: int = 12
    context_images: int = 4
    seed: int = 0

    selection_metric = "accuracy"

    def __post_init__(self):
        rng = np.random.default_rng(self.seed)
        self.data = {}
        for split in ("train", "val", "test"):
            labels = rng.integers(0, 3, (self.devices_per_split, self.images))
            images = np.zeros((self.devices_per_split, self.images, 1, 6, 6), np.float32)
            for d in range(self.devices_per_split):
                for i, label in enumerate(labels[d]):
                    images[d, i, 0, 2 * label : 2 * label + 2] = 1.0
            style = rng.uniform(0.2, 1.0, (self.devices_per_split, 1, 1, 1, 1))
            images = np.clip(images * style + rng.normal(0, 0.1, images.shape), 0, 1).astype(np.float32)
            self.data[split] = (images, labels)

    def build_model(self):
        return duet.personalize(StripeNet(), duet.SlotConfig(["conv", "norm", "head"]))

    def devices(self, split):
        return np.arange(self.devices_per_split)

    def context(self, devices, split):
        images, _ = self.data["test" if split == "finetune" else split]
        chosen = torch.from_numpy(images[np.asarray(devices), : self.context_images])
        return duet.Samples({"images": chosen}, torch.ones(chosen.shape[:2], dtype=torch.bool))

    def batches(self, split, *, device=None, rng=None, batch_size=None):
        images, labels = self.data["test" if split == "finetune" else split]
        rows = self.devices(split) if device is None else np.array([device])
        if rng is not None:
            rows = rng.permutation(rows)
        for start in range(0, len(rows), 3):
            chosen = rows[start : start + 3]
            yield duet.Batch((torch.from_numpy(images[chosen, self.context_images :].reshape(-1, 1, 6, 6)),),
                             torch.from_numpy(labels[chosen, self.context_images :].reshape(-1)), chosen)

    def loss(self, outputs, batch):
        return F.cross_entropy(outputs, batch.targets)

    def metrics(self, outputs, targets, devices):
        return {"accuracy": float((outputs.argmax(-1) == targets).mean())}


SLOTS = [("conv.weight", (6, 4, 3, 3)), ("conv.bias", (6,)), ("norm.weight", (6,)), ("norm.bias", (6,)),
         ("head.weight", (3, 6)), ("head.bias", (3,))]


def test_the_slots_come_from_the_model_and_binding_them_changes_only_the_call():
    model = StripeDevices().build_model()
    assert [(s.name, s.shape) for s in duet.slot_specs(model)] == SLOTS
    assert "slots: 6 tensors, 255 of the model's 295 parameters" in duet.describe_slots(model)
    images = torch.rand(4, 1, 6, 6)
    base = model(images)
    other = [torch.randn(*shape) for _, shape in SLOTS]
    with duet.bound_slots(model, other):
        changed = model(images)
    assert not torch.allclose(base, changed)
    torch.testing.assert_close(model(images), base)  # outside the block: Base's slots again
    assert [tuple(p.shape) for p in duet.base_slots(model)] == [shape for _, shape in SLOTS]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return duet.train(StripeDevices(), tmp_path_factory.mktemp("api") / "run",
                      duet.TrainConfig(max_epochs=1, batch_size=64, backbone_lr=0.0))


def test_a_model_of_the_users_trains_evaluates_exports_serves_and_reaches_a_device(trained, tmp_path):
    config = json.loads((trained / "config.json").read_text())
    assert config["task"] == "test_public_api:StripeDevices" and config["slots"]["target_modules"] == [
        "conv", "norm", "head"]
    result = duet.evaluate(trained)
    assert set(result["metrics"]) >= {"base", "finetune", "duet"}
    assert all(0 <= result["metrics"][m]["accuracy"] <= 1 for m in ("base", "finetune", "duet"))

    exports = tmp_path / "exports"
    report = duet.export(trained, exports, options=duet.ExportOptions(quantize="none", latency_calls=5))
    assert set(report["targets"]) == {"executorch", "tflite", "coreml"}
    for name, target in report["targets"].items():
        worst = max(case["max_abs_diff"] for case in target["parity"]["cases"].values())
        assert worst <= 1e-4, (name, target["parity"])
        assert target["accuracy"]["drop"] <= 0.005
    manifest = json.loads((exports / "manifest.json").read_text())
    assert [(s["name"], tuple(s["shape"])) for s in manifest["slots"]] == SLOTS
    assert manifest["task"] == "test_public_api:StripeDevices" and "generate" in manifest

    keys = tmp_path / "keys.txt"
    key = subprocess.run([sys.executable, str(REPO / "cli.py"), "keys", "add", "--file", str(keys)], check=True,
                         capture_output=True, text=True, cwd=tmp_path).stdout.strip()  # from elsewhere than the repo
    server, url = start_cli_serve(trained, exports, keys, free_port())
    try:
        task = StripeDevices()
        with duet.ServiceClient(url, key) as service:
            device = duet.DeviceClient(service, "tflite", tmp_path / "phone")
            device.setup()
            slots = device.refresh(task.example_request(2))
            assert [(name, values.shape) for name, values in slots.items()] == SLOTS
            images = task.data["test"][0][2, 4:].reshape(-1, 1, 6, 6)[:8]
            on_device = device.score([images])
        run = duet.load_run(trained)
        with torch.no_grad(), duet.bound_slots(run.duet, [torch.from_numpy(v) for v in slots.values()]):
            eager = run.duet(torch.from_numpy(images)).numpy()
        np.testing.assert_allclose(on_device, eager, atol=1e-4)
        with torch.no_grad():
            assert not np.allclose(on_device, run.duet(torch.from_numpy(images)).numpy(), atol=1e-4)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_the_default_request_specs_are_read_off_the_data_once():
    task = StripeDevices()
    reads = []
    original = task.context

    def counting(devices, split):
        reads.append(split)
        return original(devices, split)

    task.context = counting
    body = {"device_id": "d", "images": [[0.5] * 36] * 3}
    for _ in range(3):
        fields = task.request_inputs([body, body])
    assert sorted(reads) == ["test", "train"]  # the specs and the context size, each read once, not per request
    assert fields[0].shape == (2, 4, 1, 6, 6) and fields[1].sum() == 6 and not fields[1][:, 0].any()
