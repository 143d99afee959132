"""Slots on any PyTorch model: name its modules (as PEFT's `target_modules`), and their parameters become the slots.

    model = MyNet()
    personalize(model, SlotConfig(target_modules=["features.0", "norm", "classifier"]))
    print(describe_slots(model))          # which parameters are slots, and how many values they hold
    slot_specs(model)                     # [SlotSpec("features.0.weight", (16, 3, 3, 3)), ...]: names, shapes, order
    with bound_slots(model, values):      # one set for the whole call (a device), or one per row (training)
        logits = model(images)

`personalize` changes the model in place and returns it: each named module becomes its slot twin (`SlotLinear`,
`SlotLayerNorm`, `SlotConv2d`: the same parameters under the same names, so state dicts and checkpoints are
unchanged), which computes with the values bound for the call, or with its own parameters (Base's slots) when none
are. Slot names, order, shapes and Base's values come from the model: nothing downstream names a slot.

Values bound for a call are either one set (each tensor of its parameter's shape: a device, an exported program) or
one set per row (a leading dimension S: DUET's training, where every sample has its own slots). With S sets, a slot
module's input must have S x Q rows for some Q, consecutive rows sharing a set (a batch of S devices with Q samples
each, flattened).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.errors import SlotConfigError, SlotShapeError
from toolkit.protocol.slots import SlotSpec

REGEX_CHARACTERS = set("*+?[](){}|^$\\")  # a target with any of these is a regular expression (full match)
CONFIG_ATTRIBUTE = "duet_slot_config"  # the SlotConfig a personalised model carries
NAMES_ATTRIBUTE = "duet_slot_modules"  # and the names of its slot modules, in the model's module order


@dataclass(frozen=True)
class SlotConfig:
    """Which modules of a model hold the slots, and what the generator reads of a device's samples. Saved as JSON."""

    target_modules: tuple[str, ...]  # module names ("classifier", or a dotted suffix of one, e.g. "block.norm"), or
    # regular expressions (full match) such as r"layers\.\d+\.norm": every module matched holds slots
    context_module: str = ""  # the module whose output is a sample's context vector for the generator; "" = the
    # input of the last slot module (the features the personalised layers read)

    def __post_init__(self) -> None:
        targets = (self.target_modules,) if isinstance(self.target_modules, str) else tuple(self.target_modules)
        if not targets or not all(isinstance(t, str) and t for t in targets):
            raise SlotConfigError(f"target_modules must name at least one module, got {self.target_modules!r}")
        object.__setattr__(self, "target_modules", targets)

    def to_json(self) -> dict[str, Any]:
        return {"target_modules": list(self.target_modules), "context_module": self.context_module}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "SlotConfig":
        return cls(tuple(obj["target_modules"]), str(obj.get("context_module", "")))


class _SlotModule:
    """What every slot module shares: the values bound for the current call (None: its own parameters)."""

    _duet_bound: tuple[torch.Tensor | None, ...] | None = None
    slot_parameters: tuple[str, ...] = ("weight", "bias")  # in this order, those the module has

    def bound_value(self, name: str) -> torch.Tensor | None:
        """The value bound for parameter `name` in this call, else the module's own parameter."""
        if self._duet_bound is not None:
            value = self._duet_bound[self.slot_parameters.index(name)]
            if value is not None:
                return value
        return getattr(self, name)

    def sets(self, x: torch.Tensor, weight: torch.Tensor, parameter_dims: int) -> int:
        """The number of slot sets bound (0 when one set is shared by the call); checks that the input's rows split
        evenly into them."""
        if weight.dim() == parameter_dims:
            return 0
        count = weight.shape[0]
        if x.shape[0] % count:
            raise SlotShapeError(f"{count} slot sets are bound, but the layer's input has {x.shape[0]} rows (a multiple "
                                 f"of the sets is needed: consecutive rows share a set)")
        return count


class SlotLinear(_SlotModule, nn.Linear):
    """nn.Linear whose weight and bias are slots."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._duet_bound is None:
            return super().forward(x)
        weight, bias = self.bound_value("weight"), self.bound_value("bias")
        sets = self.sets(x, weight, 2)
        if not sets:
            return F.linear(x, weight, bias)
        flat = torch.bmm(x.reshape(sets, -1, x.shape[-1]), weight.transpose(1, 2))
        if bias is not None:
            flat = flat + (bias[:, None, :] if bias.dim() == 2 else bias)
        return flat.reshape(*x.shape[:-1], weight.shape[1])


class SlotLayerNorm(_SlotModule, nn.LayerNorm):
    """nn.LayerNorm whose scale and shift are slots (applied after the normalisation, as the runtimes need)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._duet_bound is None:
            return super().forward(x)
        weight, bias = self.bound_value("weight"), self.bound_value("bias")
        normed = F.layer_norm(x, self.normalized_shape, None, None, self.eps)
        reference = weight if weight is not None else bias
        sets = self.sets(x, reference, len(self.normalized_shape))
        if not sets:
            return _affine(normed, weight, bias)
        grouped = normed.reshape(sets, -1, *self.normalized_shape)

        def per_set(value: torch.Tensor | None) -> torch.Tensor | None:
            if value is None or value.dim() == len(self.normalized_shape):
                return value
            return value.reshape(sets, 1, *self.normalized_shape)

        return _affine(grouped, per_set(weight), per_set(bias)).reshape(x.shape)


def _affine(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None) -> torch.Tensor:
    if weight is not None:
        x = x * weight
    return x + bias if bias is not None else x


class SlotConv2d(_SlotModule, nn.Conv2d):
    """nn.Conv2d whose kernel and bias are slots; per-row sets run as one grouped convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._duet_bound is None:
            return super().forward(x)
        weight, bias = self.bound_value("weight"), self.bound_value("bias")
        sets = self.sets(x, weight, 4)
        if not sets:
            return self._conv_forward(x, weight, bias)
        rows, channels = x.shape[0], x.shape[1]
        per_set = rows // sets
        # (S*Q, C, H, W) -> (Q, S*C, H, W): set s's channels become group s of a convolution with S groups
        stacked = x.reshape(sets, per_set, channels, *x.shape[2:]).transpose(0, 1).reshape(per_set, sets * channels,
                                                                                              *x.shape[2:])
        padding = self.padding
        if self.padding_mode != "zeros":
            stacked = F.pad(stacked, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
        if bias is not None and bias.dim() == 1:
            bias = bias.repeat(sets)
        out = F.conv2d(stacked, weight.reshape(-1, *weight.shape[2:]), None if bias is None else bias.reshape(-1),
                       self.stride, padding, self.dilation, self.groups * sets)
        out_channels = out.shape[1] // sets
        return out.reshape(per_set, sets, out_channels, *out.shape[2:]).transpose(0, 1).reshape(
            rows, out_channels, *out.shape[2:])


SLOT_CLASSES: dict[type, type] = {nn.Linear: SlotLinear, nn.LayerNorm: SlotLayerNorm, nn.Conv2d: SlotConv2d}


def personalize(model: nn.Module, config: SlotConfig) -> nn.Module:
    """Make the parameters of the modules `config.target_modules` names the slots of `model` (in place; returns it).

    SlotConfigError when a target matches no module, matches a module of a type that cannot hold slots (not exactly
    nn.Linear, nn.LayerNorm or nn.Conv2d), or when a slot parameter is shared with another module; each message
    lists the modules that could hold slots.
    """
    if hasattr(model, CONFIG_ATTRIBUTE):
        raise SlotConfigError(f"{type(model).__name__} is personalised already (slots on "
                              f"{', '.join(getattr(model, NAMES_ATTRIBUTE))})")
    chosen = _matching_modules(model, config)
    _refuse_shared_parameters(model, chosen)
    if config.context_module and config.context_module not in dict(model.named_modules()):
        raise SlotConfigError(f"context_module {config.context_module!r} is not a module of {type(model).__name__}; "
                              f"it has {_listing(model, lambda m: True)}")
    for name, module in chosen:
        module.__class__ = SLOT_CLASSES[type(module)]
    setattr(model, CONFIG_ATTRIBUTE, config)
    setattr(model, NAMES_ATTRIBUTE, tuple(name for name, _ in chosen))
    return model


def _matching_modules(model: nn.Module, config: SlotConfig) -> list[tuple[str, nn.Module]]:
    """The modules the targets name, in the model's module order; SlotConfigError for a target that names none or
    names a module that cannot hold slots."""
    modules = [(name, module) for name, module in model.named_modules() if name]
    chosen: dict[str, nn.Module] = {}
    for target in config.target_modules:
        matches = [(name, module) for name, module in modules if _matches(target, name)]
        if not matches:
            raise SlotConfigError(f"target {target!r} matches no module of {type(model).__name__}; modules that can "
                                  f"hold slots: {_listing(model, _can_hold_slots)}")
        for name, module in matches:
            if type(module) not in SLOT_CLASSES:
                raise SlotConfigError(
                    f"target {target!r} matches {name!r}, a {type(module).__name__}; slots go on "
                    f"{', '.join(c.__name__ for c in SLOT_CLASSES)} modules (exactly these types): "
                    f"{_listing(model, _can_hold_slots, within=name)}")
            if not any(getattr(module, p, None) is not None for p in _SlotModule.slot_parameters):
                raise SlotConfigError(f"{name!r} ({type(module).__name__}) has no weight or bias to make a slot of")
            chosen[name] = module
    return [(name, module) for name, module in modules if name in chosen]


def _matches(target: str, name: str) -> bool:
    if REGEX_CHARACTERS & set(target):
        try:
            return re.fullmatch(target, name) is not None
        except re.error as err:
            raise SlotConfigError(f"target {target!r} is not a valid regular expression: {err}") from err
    return name == target or name.endswith("." + target)


def _can_hold_slots(module: nn.Module) -> bool:
    return type(module) in SLOT_CLASSES


def _listing(model: nn.Module, keep, within: str = "") -> str:
    """'name (Type), ...' of the modules `keep` accepts (inside `within` when it has any), or 'none'."""
    modules = [(n, m) for n, m in model.named_modules() if n and keep(m)]
    inside = [(n, m) for n, m in modules if within and n.startswith(within + ".")]
    shown = inside or modules
    text = ", ".join(f"{n} ({type(m).__name__})" for n, m in shown[:40])
    more = f", and {len(shown) - 40} more" if len(shown) > 40 else ""
    return (f"inside it: {text}{more}" if inside else f"{text}{more}") if shown else "none"


def _refuse_shared_parameters(model: nn.Module, chosen: list[tuple[str, nn.Module]]) -> None:
    """SlotConfigError when a slot parameter is also a parameter of a module that is not a slot module (tied
    weights): the program would take it as an input in one place and a constant in another."""
    owners: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(param), []).append(name)
    for module_name, module in chosen:
        for parameter in _SlotModule.slot_parameters:
            value = getattr(module, parameter, None)
            if value is None:
                continue
            names = owners.get(id(value), [])
            others = [n for n in names if n != f"{module_name}.{parameter}"]
            if others:
                raise SlotConfigError(f"{module_name}.{parameter} is shared with {', '.join(others)}; a slot must be "
                                      f"its module's own parameter (untie them, or choose another module)")


def is_slot_module(module: nn.Module) -> bool:
    """True for a module whose parameters are slots (its weights arrive with each call: an exporter must not
    compress or fold them)."""
    return isinstance(module, _SlotModule)


def is_personalized(model: nn.Module) -> bool:
    return hasattr(model, CONFIG_ATTRIBUTE)


def slot_config(model: nn.Module) -> SlotConfig:
    """The SlotConfig of a personalised model; SlotConfigError for a model without slots."""
    config = getattr(model, CONFIG_ATTRIBUTE, None)
    if config is None:
        raise SlotConfigError(f"{type(model).__name__} has no slots: call personalize(model, SlotConfig(...)) first")
    return config


def slot_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of each slot module, in the model's module order."""
    slot_config(model)
    return [(name, model.get_submodule(name)) for name in getattr(model, NAMES_ATTRIBUTE)]


def base_slots(model: nn.Module) -> list[torch.Tensor]:
    """The model's own slot parameters (Base's slots), in slot order: the live parameters, not copies."""
    return [getattr(module, parameter) for _, module in slot_modules(model)
            for parameter in _SlotModule.slot_parameters if getattr(module, parameter, None) is not None]


def base_slot_values(model: nn.Module) -> dict[str, np.ndarray]:
    """Base's slots as float32 arrays by slot name, in slot order (copies: what is written, served or compared)."""
    return {spec.name: p.detach().cpu().numpy().astype(np.float32)
            for spec, p in zip(slot_specs(model), base_slots(model))}


def slot_specs(model: nn.Module) -> list[SlotSpec]:
    """Name and shape of every slot, in slot order: '<module>.<weight|bias>', the parameter's shape."""
    return [SlotSpec(f"{name}.{parameter}", tuple(getattr(module, parameter).shape))
            for name, module in slot_modules(model) for parameter in _SlotModule.slot_parameters
            if getattr(module, parameter, None) is not None]


@contextmanager
def bound_slots(model: nn.Module, values: Sequence[torch.Tensor] | None) -> Iterator[None]:
    """Within the block, the slot modules compute with `values` (slot order): each of its slot's shape (one set for
    the call) or with a leading dimension S (one set per row group); None binds nothing (Base's slots)."""
    if values is None:
        yield
        return
    modules = slot_modules(model)
    specs = slot_specs(model)
    values = list(values)
    if len(values) != len(specs):
        raise SlotShapeError(f"{len(values)} slot values for the {len(specs)} slots {[s.name for s in specs]}")
    _check_bound_shapes(specs, values)
    position = 0
    try:
        for _, module in modules:
            own = tuple(p for p in _SlotModule.slot_parameters if getattr(module, p, None) is not None)
            bound = []
            for parameter in _SlotModule.slot_parameters:
                bound.append(values[position] if parameter in own else None)
                position += parameter in own
            module._duet_bound = tuple(bound)
        yield
    finally:
        for _, module in modules:
            module.__dict__.pop("_duet_bound", None)


def _check_bound_shapes(specs: list[SlotSpec], values: list[torch.Tensor]) -> None:
    """Every value has its slot's shape, or one leading dimension more, the same for all."""
    sets = set()
    for spec, value in zip(specs, values):
        shape = tuple(value.shape)
        if shape == spec.shape:
            sets.add(None)
        elif shape[1:] == spec.shape:
            sets.add(shape[0])
        else:
            raise SlotShapeError(f"slot {spec.name!r} should have shape {list(spec.shape)} (or one set per row: "
                                 f"[S, {', '.join(map(str, spec.shape))}]), got {list(shape)}")
    if len(sets) > 1:
        raise SlotShapeError(f"the bound slots disagree on their sets: {sorted(str(s) for s in sets)}")


def describe_slots(model: nn.Module) -> str:
    """What personalize chose, as PEFT's print_trainable_parameters tells it: each slot and the share of the model."""
    specs = slot_specs(model)
    slot_values = sum(spec.numel for spec in specs)
    total = sum(p.numel() for p in model.parameters())
    lines = [f"{spec.name}: {list(spec.shape)} ({spec.numel:,} values)" for spec in specs]
    lines.append(f"slots: {len(specs)} tensors, {slot_values:,} of the model's {total:,} parameters "
                 f"({100 * slot_values / max(total, 1):.2f}%)")
    return "\n".join(lines)


__all__ = ["SlotConfig", "SlotConv2d", "SlotLayerNorm", "SlotLinear", "base_slots", "bound_slots", "describe_slots",
           "is_personalized", "is_slot_module", "personalize", "slot_config", "slot_modules", "slot_specs"]
