"""Every choice the toolkit offers by name, listed without importing a heavy module: tasks, backbones per task.

The CLI's choice lists come from here (and from `exporters.EXPORTERS`, `toolkit.data.formats.FORMATS`,
`toolkit.data.download.DATASETS`). Adding a task or a backbone is its own module plus one line below; a test
checks that every entry imports and is what it claims to be.
"""

from __future__ import annotations

import importlib
from typing import Any

from toolkit.errors import ConfigError

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


def _load(reference: str) -> Any:
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def task_names() -> list[str]:
    return list(TASKS)


def task_class(name: str) -> Any:
    """The Task class registered as `name` (imported now); ConfigError for an unknown name."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; this toolkit has {', '.join(TASKS)}")
    return _load(TASKS[name][0])


def task_options() -> dict[str, Any]:
    """Each task's options dataclass (light modules: toolkit.options fields that `cli.py train` offers)."""
    return {name: _load(options) for name, (_, options) in TASKS.items()}


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
    return _load(BACKBONES[task][name])
