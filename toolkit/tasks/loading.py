"""Finding a task by name or import path: a built-in task, a `duet.tasks` entry point, or "package.module:Class"."""

from __future__ import annotations

import importlib
from typing import Any

from toolkit.errors import TaskError, one_line
from toolkit.registry import TASKS, load, task_entry_points, task_names
from toolkit.tasks.base import Task


def task_class(reference: str) -> Any:
    """The Task class a name or an import path "package.module:Class" refers to (imported now); TaskError naming
    what failed: an unknown name, a module that does not import, a missing attribute, or not a Task."""
    if reference in TASKS:
        return load(TASKS[reference][0])
    found = import_attribute(task_entry_points().get(reference, reference), f"task {reference!r}",
                             f"give a task name ({', '.join(task_names())}) or an import path 'package.module:Class'")
    if not (isinstance(found, type) and issubclass(found, Task)):
        raise TaskError(f"task {reference!r}: {reference} is a {type(found).__name__}, not a subclass of "
                        f"toolkit.Task")
    return found


def import_attribute(reference: str, what: str, expected: str = "an import path 'package.module:name'") -> Any:
    """What an import path "package.module:name" (the name may be dotted) names, imported now; TaskError saying
    which part failed: the form of the path, the module's import (whatever it raised), or the attribute."""
    module_name, colon, attribute = reference.partition(":")
    if not colon or not module_name or not attribute:
        raise TaskError(f"{what}: {reference!r} is not {expected}")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # whatever the user's module raises while importing
        raise TaskError(f"{what}: cannot import {module_name!r} ({type(err).__name__}: {one_line(err)})") from err
    found: Any = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise TaskError(f"{what}: {module_name!r} has no attribute {attribute!r}")
        found = getattr(found, part)
    return found

