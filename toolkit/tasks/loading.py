"""Finding a task by name or import path: a built-in task, a `duet.tasks` entry point, or "package.module:Class"."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from toolkit.errors import TaskError, one_line
from toolkit.registry import TASKS, load, task_entry_points, task_names
from toolkit.tasks.base import Task


def task_class(reference: str, search_path: str | None = None) -> Any:
    """The Task class a name or an import path "package.module:Class" refers to (imported now); TaskError naming
    what failed: an unknown name, a module that does not import, a missing attribute, or not a Task.

    `search_path`: where the module was found when the run was trained (a run records it for a task given by import
    path): tried when the module is not importable as things stand."""
    if reference in TASKS:
        return load(TASKS[reference][0])
    found = import_attribute(task_entry_points().get(reference, reference), f"task {reference!r}",
                             f"give a task name ({', '.join(task_names())}) or the import path of a Task class",
                             search_path)
    if not (isinstance(found, type) and issubclass(found, Task)):
        raise TaskError(f"task {reference!r}: {reference} is {kind_of(found)}, not a subclass of toolkit.Task")
    return found


def kind_of(value: Any) -> str:
    """The type of `value` with its article, for messages: "an int", "a function"."""
    name = type(value).__name__
    return ("an " if name[:1].lower() in "aeiou" else "a ") + name


def import_attribute(reference: str, what: str, hint: str = "", search_path: str | None = None) -> Any:
    """What an import path "package.module:name" (the name may be dotted) names, imported now; TaskError saying
    which part failed: the form of the path, the module's import (whatever it raised), or the attribute. The current
    directory is searched (as `python -m` does), then `search_path` when the module is not found otherwise."""
    module_name, colon, attribute = reference.partition(":")
    if not colon or not module_name or not attribute:
        raise TaskError(f"{what}: {reference!r} is not an import path 'package.module:name'" + (f"; {hint}" if hint
                                                                                               else ""))
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if not search_path or err.name != module_name.split(".")[0] or search_path in sys.path:
                raise
            sys.path.append(search_path)
            module = importlib.import_module(module_name)
    except Exception as err:  # whatever the user's module raises while importing
        raise TaskError(f"{what}: cannot import {module_name!r} ({type(err).__name__}: {one_line(err)})") from err
    found: Any = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise TaskError(f"{what}: {module_name!r} has no attribute {attribute!r}")
        found = getattr(found, part)
    return found


def import_root(cls: type) -> str | None:
    """The directory an import-path task's module was imported from (what sys.path needs to import it again), or
    None for a built-in task or one a package registers."""
    from toolkit.registry import TASKS, task_entry_points

    name = getattr(cls, "name", None)
    if isinstance(name, str) and (name in TASKS or name in task_entry_points()):
        return None
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    if not path:
        return None
    return str(Path(path).resolve().parents[len(cls.__module__.split(".")) - 1])

