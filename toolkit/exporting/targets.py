"""The export targets: modules that implement toolkit.exporting.contract, found through the `duet.exporters` entry points.

A target is a module with NAME, FILE_NAME, export(model, options, out_dir) -> Artifact, load(artifact, model, options)
-> Runner and validate(artifact, model, slot_sets, options) -> ParityReport; it may define check_options(options)
(its own options, ExportOptions.target_options), OPTIONS (their help, {name: text}) and RUNTIME_MODULES (what load()
imports). The toolkit's own three (ExecuTorch, LiteRT, Core ML) are registered by this project's pyproject.toml
like any other package's would be:

    [project.entry-points."duet.exporters"]
    executorch = "exporters.executorch"

Listing the names reads package metadata only; a target's module is imported on first use, so the CLI's --target
choices import no SDK. The toolkit itself never imports a target: the arrow runs from the targets to the toolkit.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from types import ModuleType

from toolkit.errors import ConfigError
from toolkit.registry import entry_point_map

GROUP = "duet.exporters"
REQUIRED = ("NAME", "FILE_NAME", "export", "load", "validate")  # what every target module defines
PREFERRED_ORDER = ("executorch", "tflite", "coreml")  # 'all' exports in this order, then the others by name


@lru_cache(maxsize=1)
def _registered() -> dict[str, str]:
    """Target name -> its module, from the installed packages' entry points."""
    found = entry_point_map(GROUP)
    order = [n for n in PREFERRED_ORDER if n in found] + sorted(n for n in found if n not in PREFERRED_ORDER)
    return {name: found[name] for name in order}


def target_names() -> list[str]:
    """Every registered target, the built-in ones first."""
    return list(_registered())


def target_modules() -> dict[str, str]:
    """Target name -> the module path its entry point names."""
    return dict(_registered())


def exporter(name: str) -> ModuleType:
    """The module of a registered target (imported now); ConfigError for a name no package registers."""
    registered = _registered()
    if name not in registered:
        if not registered:
            raise ConfigError(f"no export target is installed (entry point group {GROUP!r}); install this project "
                              f"with `pip install -e .` (the Makefile's venv does)")
        raise ConfigError(f"unknown export target {name!r}; choose one of {', '.join(registered)}")
    module = importlib.import_module(registered[name].partition(":")[0])
    missing = [attr for attr in REQUIRED if not hasattr(module, attr)]
    if missing:
        raise ConfigError(f"export target {name!r} ({module.__name__}) lacks {', '.join(missing)} of the exporter "
                          f"contract")
    return module
