"""Tasks: each owns its data and model code; toolkit.registry.TASKS maps task names to their classes."""

from __future__ import annotations

from toolkit.tasks.base import DeviceContext, Task

__all__ = ["Task", "DeviceContext"]
