"""Every choice the toolkit offers by name, listed without importing a heavy module: tasks, backbones per task.

A task is found by its name among the built-in ones below, among the `duet.tasks` entry points of installed packages
(`[project.entry-points."duet.tasks"] my_task = "my_pkg.tasks:MyTask"`), or by an import path "package.module:Class"
(`cli.py train --task my_pkg.tasks:MyTask`). Export targets are found the same way, through `duet.exporters`
(toolkit.exporting.targets). The CLI's other choice lists come from `toolkit.data.formats.FORMATS` and
`toolkit.data.download.DATASETS`. A test checks that every entry imports and is what it claims to be.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from toolkit.errors import ConfigError

TASK_GROUP = "duet.tasks"
TASKS: dict[str, tuple[str, str]] = {  # task name -> (its Task class, the dataclass of its `train` options)
    "recommendation": ("toolkit.tasks.recommendation.task:RecommendationTask",
                       "toolkit.tasks.recommendation.options:RecommendationOptions"),
    "image": ("toolkit.tasks.image.task:ImageTask", "toolkit.tasks.image.options:ImageOptions"),
}
BACKBONES: dict[str, dict[str, str]] = {  # task -> backbone name -> the module class that builds it; first = default
    "recommendation": {
        "sasrec": "toolkit.tasks.recommendation.model:SASRecEncoder",
        "gru4rec": "toolkit.tasks.recommendation.model:GRU4RecEncoder",
        "din": "toolkit.tasks.recommendation.model:DINEncoder",
    },
    "image": {
        "cnn": "toolkit.tasks.image.model:DigitCNN",
    },
}


def load(reference: str) -> Any:
    """The attribute an import path 'package.module:name' names (imported now)."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def task_names() -> list[str]:
    """The built-in tasks, then the installed packages' `duet.tasks` entry points."""
    return list(TASKS) + [name for name in task_entry_points() if name not in TASKS]


@lru_cache(maxsize=None)
def entry_point_map(group: str) -> dict[str, str]:
    """Name -> import path of the installed packages' entry points in `group`, read once per process."""
    return {ep.name: ep.value for ep in entry_points(group=group)}


def task_entry_points() -> dict[str, str]:
    """Task name -> import path, from the installed packages' `duet.tasks` entry points."""
    return entry_point_map(TASK_GROUP)


def task_options() -> dict[str, Any]:
    """Each built-in task's options dataclass (light modules: toolkit.options fields that `cli.py train` offers)."""
    return {name: load(options) for name, (_, options) in TASKS.items()}


def backbone_names(task: str | None = None) -> list[str]:
    """The backbones of one task (its default first), or of every task."""
    if task is None:
        return [name for names in BACKBONES.values() for name in names]
    return list(BACKBONES.get(task, {}))


def default_backbone(task: str) -> str:
    return backbone_names(task)[0]


def backbone_class(task: str, name: str) -> Any:
    """The module class of one backbone of `task` (imported now); ConfigError for a backbone of another task."""
    if name not in BACKBONES.get(task, {}):
        raise ConfigError(f"the {task} task has no backbone {name!r}; choose one of {', '.join(backbone_names(task))}")
    return load(BACKBONES[task][name])
