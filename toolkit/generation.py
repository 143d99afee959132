"""Slot generation for devices: the generator's output as named numpy arrays, in the slot spec's order."""

from __future__ import annotations

import numpy as np
import torch

from toolkit.runs import Run
from toolkit.tasks.base import DeviceContext


def generate_slots(run: Run, context: DeviceContext) -> list[dict[str, np.ndarray]]:
    """One {slot name: fp32 array} per device of the batch."""
    with torch.no_grad():
        params = run.generator(context.vectors, context.mask, list(run.duet.head.params))
    specs = run.duet.slot_specs
    return [{spec.name: params[i][row].numpy().astype(np.float32) for i, spec in enumerate(specs)}
            for row in range(context.vectors.shape[0])]


def slots_for_device(run: Run, device: int, split: str = "test") -> dict[str, np.ndarray]:
    """Slots generated from one device's data as it stands when `split` begins."""
    return generate_slots(run, run.task.device_context(run.duet, device, split))[0]


def slots_for_request(run: Run, payloads: list[dict]) -> list[dict[str, np.ndarray]]:
    """Slots for validated generate-request bodies (RequestError on bad input)."""
    return generate_slots(run, run.task.request_context(run.duet, payloads))
