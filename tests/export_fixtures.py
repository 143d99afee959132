"""Shared pieces of the exporter tests: a tiny device model (a few KB) per backbone and a cache of its exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

BACKBONES = ("sasrec", "gru4rec", "din")
TARGETS = ("executorch", "tflite", "coreml")
SEQ_LEN, CANDIDATES = 6, 5


def tiny_device_model(backbone: str = "sasrec", seed: int = 0, candidates: int = CANDIDATES):
    """A recommender with 50 items and 8-wide embeddings, as its device program (history 6, candidates 5)."""
    import torch

    from toolkit.exporting.program import DeviceProgram, ExampleInput
    from toolkit.protocol.slots import TensorSpec
    from toolkit.tasks.recommendation.model import RecExportModel, RecModel, RecModelConfig

    torch.manual_seed(seed)
    model = RecModel.personalized(RecModelConfig(backbone=backbone, n_items=50, max_len=SEQ_LEN, embed_dim=8,
                                                 head_hidden=8, dropout=0.0, context_items=5))
    with torch.no_grad():
        model.item_bias.weight.normal_(0, 0.1)  # non-zero, so the bias lookup is checked too
    inputs = [ExampleInput(TensorSpec("history", (1, SEQ_LEN), "int32"), 0, 49),
              ExampleInput(TensorSpec("candidates", (1, candidates), "int32"), 1, 49)]
    return DeviceProgram.from_specs(model, inputs, "scores", RecExportModel).eval()


def tiny_conv_device_model(seed: int = 0):
    """A program of another shape of task: two 3x3 convs over (2, 1, 6, 6) images, a LayerNorm and a linear
    classifier to 3 logits; its slots are of every kind: the second convolution's kernel, the norm, the classifier."""
    import torch
    from torch import nn

    from toolkit.exporting.program import DeviceProgram, ExampleInput
    from toolkit.model.slots import SlotConfig, personalize
    from toolkit.protocol.slots import TensorSpec

    class ConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 4, 3, padding=1)
            self.conv = nn.Conv2d(4, 8, 3, stride=2)
            self.norm = nn.LayerNorm(8)
            self.classifier = nn.Linear(8, 3)

        def forward(self, pixels):
            features = torch.relu(self.conv(torch.relu(self.stem(pixels)))).mean(dim=(2, 3))
            return self.classifier(self.norm(features))

    torch.manual_seed(seed)
    model = personalize(ConvNet(), SlotConfig(("conv", "norm", "classifier")))
    return DeviceProgram.from_specs(model, [ExampleInput(TensorSpec("pixels", (2, 1, 6, 6), "float32"))],
                                    "logits").eval()


def slot_sets(model, count: int = 3, start: int = 1) -> dict[str, dict[str, np.ndarray]]:
    """`count` different slot sets of the model's spec (stand-ins for three devices' generated slots)."""
    from toolkit.exporting.contract import example_slots

    return {f"set-{i}": example_slots(model, seed=i) for i in range(start, start + count)}


class ExportCache:
    """Each (target, backbone, quantize) exported once per test session, into its own directory."""

    def __init__(self, root: Path):
        self.root, self.done = root, {}

    def get(self, target: str, backbone: str = "sasrec", quantize: str = "none"):
        key = (target, backbone, quantize)
        if key not in self.done:
            from toolkit.exporting.targets import exporter
            from toolkit.exporting.contract import ExportOptions

            model = tiny_device_model(backbone)
            options = ExportOptions(quantize=quantize, min_quant_elements=0, latency_calls=5)
            out = self.root / "-".join(key)
            out.mkdir(parents=True)
            self.done[key] = (exporter(target).export(model, options, out), model, options)
        return self.done[key]


@pytest.fixture(scope="session")
def exports(tmp_path_factory) -> ExportCache:
    return ExportCache(tmp_path_factory.mktemp("exports"))
