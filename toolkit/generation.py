"""Slot generation for devices: the generator's output as named numpy arrays, in the slot spec's order."""

from __future__ import annotations

import numpy as np
import torch

from toolkit.runs import Run
from toolkit.tasks.base import DeviceContext


def generate_slot_batch(run: Run, context: DeviceContext) -> dict[str, np.ndarray]:
    """{slot name: fp32 array (B, *shape)} for the devices of the batch, in spec order."""
    with torch.inference_mode():
        params = run.generator(context.vectors, context.mask, list(run.duet.head.params))
    return {spec.name: np.asarray(p.numpy(), dtype=np.float32) for spec, p in zip(run.duet.slot_specs, params)}


def generate_slots(run: Run, context: DeviceContext) -> list[dict[str, np.ndarray]]:
    """One {slot name: fp32 array} per device of the batch (views into one batch array per slot)."""
    batch = generate_slot_batch(run, context)
    return [{name: values[row] for name, values in batch.items()} for row in range(context.vectors.shape[0])]


def slots_for_device(run: Run, device: int, split: str = "test") -> dict[str, np.ndarray]:
    """Slots generated from one device's data as it stands when `split` begins."""
    return generate_slots(run, run.task.device_context(run.duet, device, split))[0]


def slots_for_request(run: Run, payloads: list[dict]) -> list[dict[str, np.ndarray]]:
    """Slots for validated generate-request bodies (RequestError on bad input)."""
    return generate_slots(run, run.task.request_context(run.duet, payloads))
