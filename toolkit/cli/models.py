"""What `cli.py export --model` takes from the command line: the user's model, built by an import path with its slots
named, and the inputs of its program (NAME=DIMS[:DTYPE[:LOW..HIGH]])."""

from __future__ import annotations

import re
from typing import Sequence

import click

from toolkit.errors import ConfigError, TaskError, one_line

INPUT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<dims>\d+(?:x\d+)*)"
                   r"(?::(?P<dtype>float32|int32))?(?::(?P<low>-?\d+(?:\.\d+)?)\.\.(?P<high>-?\d+(?:\.\d+)?))?")
MAX_ELEMENTS = 1 << 26  # one input of at most this many values (a program input, not a data set)


def built_model(reference: str, slots: str | None):
    """The nn.Module `reference` ("package.module:factory") builds, personalised on `slots` (comma-separated) unless
    it is already; TaskError/SlotConfigError/ConfigError with one line saying what failed."""
    from torch import nn

    from toolkit.model.slots import SlotConfig, is_personalized, personalize
    from toolkit.tasks.loading import import_attribute, kind_of

    factory = import_attribute(reference, f"model {reference!r}")
    if not callable(factory):
        raise TaskError(f"model {reference!r}: {reference.partition(':')[2]} is {kind_of(factory)}, not a "
                        f"class or function that builds a model")
    try:
        model = factory()
    except Exception as err:  # whatever the user's factory raises
        raise TaskError(f"model {reference!r}: building it raised {type(err).__name__}: {one_line(err)}") from err
    if not isinstance(model, nn.Module):
        raise TaskError(f"model {reference!r} built {kind_of(model)}, not a torch.nn.Module")
    names = tuple(n.strip() for n in (slots or "").split(",") if n.strip())
    if is_personalized(model):
        if names:
            raise ConfigError(f"model {reference!r} names its slots itself; drop --slots")
        return model.eval()
    if not names:
        raise ConfigError(f"model {reference!r} has no slots: name its slot modules with --slots NAME[,NAME...]")
    return personalize(model, SlotConfig(names)).eval()


def example_inputs(texts: Sequence[str]):
    """ExampleInputs of `--input` values; click.BadParameter names a malformed one."""
    from toolkit.exporting.program import ExampleInput
    from toolkit.protocol.slots import TensorSpec

    if not texts:
        raise click.UsageError("--model needs its program's inputs: --input NAME=DIMS[:DTYPE[:LOW..HIGH]], in the order "
                               "its forward takes them")
    inputs = []
    for text in texts:
        match = INPUT.fullmatch(text.strip())
        if not match:
            raise click.BadParameter(f"{text!r} is not NAME=DIMS[:DTYPE[:LOW..HIGH]] (e.g. images=1x3x32x32 or "
                                     f"ids=1x30:int32:1..999)", param_hint="--input")
        dims = tuple(int(d) for d in match["dims"].split("x"))
        count = 1
        for d in dims:
            count *= d
        if not dims or min(dims) < 1 or count > MAX_ELEMENTS:
            raise click.BadParameter(f"{text!r}: every dimension at least 1, at most {MAX_ELEMENTS:,} values in all",
                                     param_hint="--input")
        dtype = match["dtype"] or "float32"
        if match["low"] is None and dtype == "int32":
            raise click.BadParameter(f"{text!r}: an int32 input needs its range, e.g. {match['name']}="
                                     f"{match['dims']}:int32:0..999", param_hint="--input")
        low, high = (float(match["low"]), float(match["high"])) if match["low"] is not None else (0.0, 1.0)
        if not low < high and not (dtype == "int32" and low == high):
            raise click.BadParameter(f"{text!r}: LOW must be below HIGH", param_hint="--input")
        inputs.append(ExampleInput(TensorSpec(match["name"], dims, dtype), low, high))
    return inputs
