"""Command-line options declared once, on the fields of the config dataclasses that receive their values.

A field made with `option(default, help, ...)` is offered by `cli.py` as `--field-name`; `click_options(Config)`
turns every such field of a dataclass into a click option (type from the annotation, help, choices and range from
the field), and `values_for(Config, params)` picks that dataclass's values back out of a command's parameters.
Every int and float option declares its range; click refuses a value outside it (and NaN or infinity) before a
command runs, and `check_ranges` refuses the same values when a config is built in code. The dataclass modules do
not import click.
"""

from __future__ import annotations

import functools
import json
import math
import typing
from dataclasses import MISSING, Field, field, fields
from typing import Any, Callable, Mapping, Sequence

CLI_DEFAULT = "cli_default"  # metadata key: the option's default when it differs from the field's (e.g. None)


def option(default: Any, help: str, *, flag: str = "", choices: Any = None, cli_default: Any = MISSING,
           minimum: float | None = None, maximum: float | None = None, above: bool = False,
           hidden: bool = False) -> Any:
    """A dataclass field that `cli.py` offers as an option.

    flag: the option's declaration when it is not `--field-name` (e.g. "--timeout", "--fresh/--fixed");
    choices: a tuple, or a function returning one (called when the command is built); cli_default: the
    option's default when the field's is not it (None: "the task's default"); minimum/maximum: the range of an
    int or float option (every one declares at least one bound); above: the value must exceed `minimum`.
    """
    metadata = {"help": help, "flag": flag, "choices": choices, "minimum": minimum, "maximum": maximum,
                "above": above, "hidden": hidden}
    if cli_default is not MISSING:
        metadata[CLI_DEFAULT] = cli_default
    return field(default=default, metadata=metadata)


def offered(config_class: type) -> list[Field]:
    """The fields of a dataclass that are declared with `option`."""
    return [f for f in fields(config_class) if "help" in f.metadata]


def values_for(config_class: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """The command parameters that set fields of `config_class`, by field name."""
    return {f.name: params[f.name] for f in fields(config_class) if f.name in params}


def click_options(*config_classes: type) -> Callable:
    """A decorator adding one click option per `option` field of the given dataclasses, in field order.

    A dataclass's `HELP_PREFIX` class attribute, if any, starts the help of each of its options."""
    import click

    def decorate(command: Callable) -> Callable:
        for config_class in reversed(config_classes):
            hints = typing.get_type_hints(config_class)
            for spec in reversed(offered(config_class)):
                declarations, settings = _click_option(spec, hints[spec.name],
                                                       getattr(config_class, "HELP_PREFIX", ""), click)
                command = click.option(*declarations, **settings)(command)
        return command

    return decorate


def _click_option(spec: Field, annotation: Any, help_prefix: str, click: Any) -> tuple[list[str], dict]:
    meta = spec.metadata
    kind = next((a for a in typing.get_args(annotation) if a is not type(None)), annotation)  # X | None -> X
    default = meta.get(CLI_DEFAULT, spec.default)
    flag = meta["flag"] or "--" + spec.name.replace("_", "-")
    settings: dict[str, Any] = {"default": default, "help": help_prefix + meta["help"], "hidden": meta["hidden"],
                                "show_default": default not in (None, False, "")}
    if kind is bool:
        if "/" not in flag and default:
            flag = f"{flag}/--no-{flag[2:]}"
        settings["is_flag"] = True
    elif meta["choices"] is not None:
        choices = meta["choices"]() if callable(meta["choices"]) else meta["choices"]
        settings["type"] = click.Choice([str(c) for c in choices])
    elif kind is int:
        settings["type"] = click.IntRange(meta["minimum"], meta["maximum"], min_open=meta["above"])
    elif kind is float:
        settings["type"] = float_range(meta["minimum"], meta["maximum"], meta["above"])
    else:
        settings["type"] = kind
    return [flag, spec.name], settings


def float_range(minimum: float | None = None, maximum: float | None = None, above: bool = False) -> Any:
    """The click type of a float option: a finite number in the range (click.FloatRange alone lets NaN through)."""
    return _finite_float_range()(minimum, maximum, min_open=above)


@functools.cache
def _finite_float_range() -> type:
    import click

    class FiniteFloatRange(click.FloatRange):
        def convert(self, value: Any, param: Any, ctx: Any) -> Any:
            number = click.FLOAT.convert(value, param, ctx)
            if not math.isfinite(number):
                self.fail(f"{value!r} is not a finite number.", param, ctx)
            return super().convert(number, param, ctx)

    return FiniteFloatRange


def check_ranges(config: Any, what: str) -> None:
    """ConfigError unless every int and float `option` field of the dataclass `config` holds a finite number within
    its declared range (None passes: "the task's default"); what click checks on the command line, for configs
    built in code or read back from a file."""
    from toolkit.errors import ConfigError

    for spec in offered(type(config)):
        meta, value = spec.metadata, getattr(config, spec.name)
        if value is None or isinstance(value, (bool, str)) or (meta["minimum"] is None and meta["maximum"] is None):
            continue
        low, high, above = meta["minimum"], meta["maximum"], meta["above"]
        inside = (isinstance(value, (int, float)) and math.isfinite(value)
                  and (low is None or (value > low if above else value >= low)) and (high is None or value <= high))
        if not inside:
            bounds = " and ".join(b for b in ((f"> {low}" if above else f">= {low}") if low is not None else "",
                                              f"<= {high}" if high is not None else "") if b)
            raise ConfigError(f"{what}: {spec.name} must be a finite number {bounds}, got {value!r}")


def cache_dir_option(command: Callable) -> Callable:
    """--cache-dir, for every command that reads data: resolved by toolkit.data.cache (never the current directory)."""
    import click

    def resolve(ctx: Any, param: Any, value: str | None) -> Any:
        from toolkit.data.cache import cache_dir

        return cache_dir(value)

    return click.option("--cache-dir", type=click.Path(file_okay=False), default=None, callback=resolve,
                        help="Where preprocessed data is cached [$DUET_CACHE_DIR, else the user cache directory, "
                             "e.g. ~/.cache/duet].")(command)


def named_values(pairs: Sequence[str], reserved: set[str]) -> dict[str, Any]:
    """`--set NAME=VALUE` pairs as a dict; VALUE is JSON when it parses, else text; a reserved name is refused."""
    import click

    values = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.isidentifier():
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--set")
        if name in reserved:
            raise click.BadParameter(f"{name} has an option of its own: use --{name.replace('_', '-')}",
                                     param_hint="--set")
        try:
            values[name] = json.loads(text)
        except ValueError:
            values[name] = text
    return values


def shape_values(pairs: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """`--shape NAME=SIZE` pairs as ExportOptions.shape; SIZE a positive integer."""
    import click

    shapes = []
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.isidentifier() or not text.strip().isdigit() or len(text.strip()) > 9 \
                or int(text) < 1:
            raise click.BadParameter(f"{pair!r} is not NAME=SIZE with a positive integer size", param_hint="--shape")
        shapes.append((name, int(text)))
    return tuple(shapes)


def target_option_values(pairs: Sequence[str]) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    """`--target-option TARGET.NAME=VALUE` pairs as ExportOptions.target_options; VALUE is JSON when it parses."""
    import click

    by_target: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        target, dot, name = key.partition(".")
        if not sep or not dot or not target or not name.isidentifier():
            raise click.BadParameter(f"{pair!r} is not TARGET.NAME=VALUE", param_hint="--target-option")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        by_target.setdefault(target, {})[name] = value
    return tuple((target, tuple(values.items())) for target, values in by_target.items())
