"""Tasks: each owns its data and model code; the registry maps task names to their classes."""

from __future__ import annotations

from toolkit.tasks.base import DeviceContext, Task
from toolkit.tasks.image import ImageTask
from toolkit.tasks.recommendation import RecommendationTask

TASKS: dict[str, type[Task]] = {
    RecommendationTask.name: RecommendationTask,
    ImageTask.name: ImageTask,
}

__all__ = ["TASKS", "Task", "DeviceContext"]
