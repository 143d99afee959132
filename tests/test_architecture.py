"""The pipeline's order holds in the code: no module imports a module of a later stage (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = [  # (stage, module prefixes); a module may import its own stage and earlier ones
    (0, ["toolkit.errors", "toolkit.options", "toolkit.config", "toolkit.artifacts", "toolkit.registry",
         "toolkit.protocol", "toolkit.data", "toolkit.exporting.contract", "toolkit.exporting.targets",
         "toolkit.training.distributed"]),
    (1, ["toolkit.model"]),
    (2, ["toolkit.tasks"]),
    (3, ["toolkit.training.runs"]),
    (4, ["toolkit.training"]),
    (5, ["toolkit.evaluation", "toolkit.exporting"]),
    (6, ["toolkit.service", "toolkit.client", "toolkit.bench", "toolkit.cli", "toolkit.data.scale", "toolkit.pipeline"]),
]


def stage_of(module: str) -> int:
    """The stage of the longest matching prefix (the package `toolkit` itself, its version, is stage 0)."""
    if module == "toolkit":
        return 0
    best, length = None, -1
    for stage, prefixes in STAGES:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = stage, len(prefix)
    if best is None:
        raise AssertionError(f"{module} has no stage in tests/test_architecture.py: add it")
    return best


def toolkit_modules() -> dict[str, Path]:
    paths = sorted((ROOT / "toolkit").rglob("*.py"))
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p for p in paths}


def imports_of(path: Path) -> set[str]:
    """Every toolkit module a file imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("toolkit"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("toolkit"):
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", sorted(toolkit_modules()))
def test_no_module_imports_a_later_stage(module):
    later = sorted(m for m in imports_of(toolkit_modules()[module]) if stage_of(m) > stage_of(module))
    assert not later, f"{module} (stage {stage_of(module)}) imports later stages: {later}"


def test_the_check_can_fail():
    assert stage_of("toolkit.training.train") > stage_of("toolkit.training.runs")  # runs.py importing the trainer would be caught
    assert stage_of("toolkit.service.app") > stage_of("toolkit.training.serving")


def imports_of_package(path: Path, package: str) -> set[str]:
    """Every module of `package` a file imports (top level or inside a function, `import` or `from ... import`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name == package or a.name.startswith(package + "."))
        elif isinstance(node, ast.ImportFrom) and node.module and (
                node.module == package or node.module.startswith(package + ".")):
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", sorted(toolkit_modules()))
def test_no_toolkit_module_imports_the_exporters(module):
    """The arrow runs from the targets to the toolkit: toolkit/ finds targets through entry points, never by import."""
    assert not imports_of_package(toolkit_modules()[module], "exporters"), f"{module} imports exporters/"


def test_the_exporters_check_can_fail(tmp_path):
    offender = tmp_path / "offender.py"
    offender.write_text("def load():\n    from exporters.executorch import export\n")
    assert imports_of_package(offender, "exporters") == {"exporters.executorch"}
