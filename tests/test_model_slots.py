"""Slots on any module (toolkit.model.slots): which modules match, the errors that list what could, and binding values
for a call: one set, or one set per row, computing exactly what the module computes with those parameters."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from toolkit.errors import SlotConfigError, SlotShapeError
from toolkit.model.context import Samples, model_features
from toolkit.model.slots import (SlotConfig, SlotConv2d, base_slots, bound_slots, is_slot_module, personalize,
                                 slot_specs)


class Net(nn.Module):
    def __init__(self, padding_mode: str = "zeros", groups: int = 1):
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1)
        self.block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, padding_mode=padding_mode, groups=groups), nn.ReLU())
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        features = self.block(torch.relu(self.stem(x))).mean(dim=(2, 3))
        return self.head(self.norm(features))


def test_names_suffixes_and_regular_expressions_choose_modules_in_model_order():
    model = personalize(Net(), SlotConfig(("head", "block.0", r"no\w+")))
    assert [s.name for s in slot_specs(model)] == ["block.0.weight", "block.0.bias", "norm.weight", "norm.bias",
                                                  "head.weight", "head.bias"]
    assert [s.shape for s in slot_specs(model)][0] == (4, 4, 3, 3)
    assert isinstance(model.block[0], SlotConv2d) and is_slot_module(model.head) and not is_slot_module(model.stem)
    owners = [model.block[0].weight, model.block[0].bias, model.norm.weight, model.norm.bias, model.head.weight,
              model.head.bias]
    assert all(p is q for p, q in zip(base_slots(model), owners)) and len(base_slots(model)) == len(owners)


def test_personalize_keeps_the_state_dict_and_the_function():
    torch.manual_seed(0)
    plain = Net()
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    x = torch.randn(3, 2, 5, 5)
    expected = plain(x)
    model = personalize(plain, SlotConfig(("block.0", "norm", "head")))
    assert list(model.state_dict()) == list(before) and all(torch.equal(model.state_dict()[k], v)
                                                            for k, v in before.items())
    torch.testing.assert_close(model(x), expected, rtol=0, atol=0)
    twin = copy.deepcopy(model)
    assert slot_specs(twin) == slot_specs(model) and base_slots(twin)[0] is twin.block[0].weight


@pytest.mark.parametrize("targets,words", [
    (("heads",), "target 'heads' matches no module of Net; modules that can hold slots: stem (Conv2d), block.0 "
                 "(Conv2d), norm (LayerNorm), head (Linear)"),
    (("block",), "target 'block' matches 'block', a Sequential; slots go on Linear, LayerNorm, Conv2d modules "
                 "(exactly these types): inside it: block.0 (Conv2d)"),
    (("block.1",), "target 'block.1' matches 'block.1', a ReLU"),
    ((r"he(ad",), "is not a valid regular expression"),
    ((), "target_modules must name at least one module"),
])
def test_a_target_that_names_nothing_usable_lists_what_could_hold_slots(targets, words):
    with pytest.raises(SlotConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        personalize(Net(), SlotConfig(targets))


def test_shared_parameters_another_context_module_and_a_second_personalize_are_refused():
    tied = Net()
    tied.head = nn.Linear(4, 4)
    tied.head.bias = tied.stem.bias  # one parameter, two modules
    with pytest.raises(SlotConfigError, match=r"stem.bias is shared with head.bias; a slot must be"):
        personalize(tied, SlotConfig(("stem",)))
    with pytest.raises(SlotConfigError, match="context_module 'trunk' is not a module of Net; it has stem"):
        personalize(Net(), SlotConfig(("head",), context_module="trunk"))
    model = personalize(Net(), SlotConfig(("head",)))
    with pytest.raises(SlotConfigError, match="Net is personalised already"):
        personalize(model, SlotConfig(("norm",)))
    with pytest.raises(SlotConfigError, match="has no weight or bias"):
        personalize(nn.Sequential(nn.LayerNorm(4, elementwise_affine=False)), SlotConfig(("0",)))


@pytest.mark.parametrize("padding_mode,groups", [("zeros", 1), ("reflect", 1), ("zeros", 2)])
def test_one_set_per_row_computes_what_each_set_computes_alone(padding_mode, groups):
    torch.manual_seed(0)
    model = personalize(Net(padding_mode, groups), SlotConfig(("block.0", "norm", "head")))
    sets, per_set = 3, 2
    values = [p.detach() + 0.3 * torch.randn(sets, *p.shape) for p in base_slots(model)]
    x = torch.randn(sets * per_set, 2, 5, 5)
    with bound_slots(model, values):
        together = model(x)
    for s in range(sets):
        with bound_slots(model, [v[s] for v in values]):
            alone = model(x[s * per_set : (s + 1) * per_set])
        torch.testing.assert_close(together[s * per_set : (s + 1) * per_set], alone, atol=1e-5, rtol=1e-5)


def test_one_shared_set_equal_to_the_parameters_changes_nothing_and_other_values_change_the_output():
    torch.manual_seed(0)
    model = personalize(Net(), SlotConfig(("block.0", "norm", "head")))
    x = torch.randn(4, 2, 5, 5)
    base = model(x)
    with bound_slots(model, [p.detach().clone() for p in base_slots(model)]):
        torch.testing.assert_close(model(x), base, atol=1e-6, rtol=0)
    with bound_slots(model, [p.detach() * 1.5 for p in base_slots(model)]):
        assert not torch.allclose(model(x), base, atol=1e-3)
    torch.testing.assert_close(model(x), base, atol=0, rtol=0)  # unbound again after the block


def test_bound_values_of_the_wrong_count_shape_or_rows_are_refused():
    model = personalize(Net(), SlotConfig(("head",)))
    with pytest.raises(SlotShapeError, match=r"1 slot values for the 2 slots \['head.weight', 'head.bias'\]"):
        with bound_slots(model, [torch.zeros(3, 4)]):
            pass
    with pytest.raises(SlotShapeError, match=r"slot 'head.weight' should have shape \[3, 4\]"):
        with bound_slots(model, [torch.zeros(4, 3), torch.zeros(3)]):
            pass
    with pytest.raises(SlotShapeError, match="disagree on their sets"):
        with bound_slots(model, [torch.zeros(2, 3, 4), torch.zeros(3, 3)]):
            pass
    with pytest.raises(SlotShapeError, match="3 slot sets are bound, but the layer's input has 4 rows"):
        with bound_slots(model, [torch.zeros(3, 3, 4), torch.zeros(3, 3)]):
            model(torch.randn(4, 2, 5, 5))


def test_the_default_context_is_the_last_slot_modules_input_or_the_named_modules_output():
    torch.manual_seed(0)
    samples = Samples({"x": torch.randn(2, 3, 2, 5, 5)}, torch.ones(2, 3, dtype=torch.bool))
    model = personalize(Net(), SlotConfig(("block.0", "head")))
    flat = samples.fields["x"].reshape(6, 2, 5, 5)
    expected = model.norm(model.block(torch.relu(model.stem(flat))).mean(dim=(2, 3)))  # the head's input
    torch.testing.assert_close(model_features(model, samples), expected.reshape(2, 3, 4))
    named = personalize(Net(), SlotConfig(("head",), context_module="stem"))
    stem = named.stem(flat).mean(dim=(2, 3))  # a feature map, averaged over its positions
    torch.testing.assert_close(model_features(named, samples), stem.reshape(2, 3, 4))
