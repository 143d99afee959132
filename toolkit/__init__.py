"""DUET toolkit: tuning-free on-device personalisation with generated parameter slots.

The public API (docs/python-api.md walks through it):

    import toolkit as duet

    model = duet.personalize(MyNet(), duet.SlotConfig(target_modules=["features.0", "norm", "classifier"]))

    class MyTask(duet.Task): ...                    # six methods: your devices, their samples, loss, metrics
    run = duet.train(MyTask(), "runs/mine")         # Base, then the DUET generator
    duet.evaluate(run)                              # Base, per-device fine-tuning and DUET on every test device
    duet.export(run, "exports/mine")                # ExecuTorch, LiteRT and Core ML programs with swappable slots

Names are imported on first use, so `import toolkit` stays light (the CLI's --help does not load PyTorch).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {  # name -> the module that defines it
    # slots on any module
    "SlotConfig": "toolkit.model.slots", "personalize": "toolkit.model.slots", "slot_specs": "toolkit.model.slots",
    "base_slots": "toolkit.model.slots", "bound_slots": "toolkit.model.slots", "describe_slots": "toolkit.model.slots",
    "SlotSpec": "toolkit.protocol.slots", "TensorSpec": "toolkit.protocol.slots",
    # the task contract
    "Task": "toolkit.tasks.base", "Batch": "toolkit.tasks.base", "Samples": "toolkit.tasks.base",
    "SampleSpec": "toolkit.tasks.base",
    # settings
    "TrainConfig": "toolkit.config", "GeneratorConfig": "toolkit.config", "FinetuneConfig": "toolkit.config",
    "ExportOptions": "toolkit.exporting.contract", "ExampleInput": "toolkit.exporting.program",
    # the pipeline
    "train": "toolkit.pipeline", "evaluate": "toolkit.pipeline", "export": "toolkit.pipeline",
    "export_model": "toolkit.pipeline", "load_run": "toolkit.pipeline",
    # devices
    "ServiceClient": "toolkit.client", "DeviceClient": "toolkit.client",
    # errors
    "DuetError": "toolkit.errors", "SlotConfigError": "toolkit.errors", "SlotShapeError": "toolkit.errors",
    "TaskError": "toolkit.errors",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
