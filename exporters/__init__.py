"""Exporters: one module per device runtime behind one contract, listed in an explicit registry.

Each module exposes NAME, FILE_NAME, export(model, options, out_dir) -> Artifact, load(artifact, model, options)
-> Runner and validate(artifact, model, slot_sets, options) -> ParityReport, and may name RUNTIME_MODULES (what
load() imports; `cli.py bench` imports them before it times a load). Modules are imported on first use, so listing
the targets (the CLI's --target choices) imports no SDK.
"""

from __future__ import annotations

import importlib
from types import ModuleType

EXPORTERS: dict[str, str] = {  # target name -> the module that owns everything about that target
    "executorch": "exporters.executorch",
    "tflite": "exporters.tflite",
    "coreml": "exporters.coreml",
}
SUPPORT_MODULES: dict[str, str] = {  # modules of exporters/ that are not targets, and who owns them
    "exporters.base": "the contract all targets share",
    "exporters.coreml.mil": "coreml: numpy evaluator of the saved ML program (Linux has no Core ML runtime)",
}


def target_names() -> list[str]:
    return list(EXPORTERS)


def exporter(name: str) -> ModuleType:
    """The module of a registered target (imported now)."""
    if name not in EXPORTERS:
        from toolkit.errors import ConfigError

        raise ConfigError(f"unknown export target {name!r}; choose one of {', '.join(EXPORTERS)}")
    return importlib.import_module(EXPORTERS[name])
