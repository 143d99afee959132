"""The parameter generator: every parameter trains, output shapes follow the slot spec, cost is linear in slot size."""

from __future__ import annotations

import pytest
import torch

from torch import nn

from toolkit.model.generator import GeneratorConfig, ParameterGenerator, matrix_shape
from toolkit.model.slots import SlotConfig, bound_slots, personalize, slot_specs
from toolkit.protocol.slots import SlotSpec
from toolkit.tasks.head import HeadShape, SlotMLP

SHAPE = HeadShape(in_dim=6, hidden_dim=5, out_dim=4)


def _personalized() -> nn.Module:
    return personalize(nn.Sequential(SlotMLP(SHAPE)), SlotConfig(("0.0", "0.1")))


SPECS = slot_specs(_personalized())  # two weight matrices and two bias vectors, read off the model


def _generator(**overrides) -> ParameterGenerator:
    return ParameterGenerator(GeneratorConfig(context_dim=7, code_dim=8, rank=2, n_candidates=3, **overrides),
                              SPECS)


def _base_params():
    torch.manual_seed(0)
    return [torch.randn(*s.shape) for s in SPECS]


@pytest.mark.parametrize("stabilizer,sample_dim", [(True, None), (False, None), (True, 3)])
def test_every_generator_parameter_receives_a_gradient(stabilizer, sample_dim):
    torch.manual_seed(0)
    generator = _generator(stabilizer=stabilizer, sample_dim=sample_dim, dropout=0.0)
    context, mask = torch.randn(3, 5, 7), torch.ones(3, 5, dtype=torch.bool)
    mask[0, :2] = False
    params = generator(context, mask, _base_params())
    model = _personalized()
    with bound_slots(model, params):  # one slot set per row: 3 devices, 2 samples each
        loss = model(torch.randn(3 * 2, 6)).pow(2).sum()
    loss.backward()
    names = [n for n, _ in generator.named_parameters()]
    parts = {name.split(".")[0] for name in names}
    assert parts == ({"encoder", "stabilizer", "writer"} if stabilizer else {"encoder", "writer"})
    missing = [n for n, p in generator.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"parameters without gradient: {missing}"
    assert set(names) <= set(generator.state_dict()), "a parameter the checkpoint would not save"


def test_sample_dim_sets_the_per_sample_layer_width_and_defaults_to_the_code_width():
    narrow, default = _generator(sample_dim=3), _generator()
    assert narrow.encoder.embed[0].out_features == 3 and narrow.encoder.embed[2].out_features == 8
    assert default.encoder.embed[0].out_features == 8
    saved_before_the_option = {"context_dim": 7, "code_dim": 8, "rank": 2, "n_candidates": 3}
    assert GeneratorConfig(**saved_before_the_option).sample_dim is None  # older runs load unchanged


def test_generated_slots_follow_the_spec_and_start_near_base():
    generator = _generator()
    base = _base_params()
    params = generator(torch.randn(4, 6, 7), torch.ones(4, 6, dtype=torch.bool), base)
    for p, b, spec in zip(params, base, SPECS):
        assert p.shape == (4, *spec.shape)
        assert torch.allclose(p, b.expand_as(p), atol=0.05)  # small-initialised residual


def test_different_contexts_give_different_slots():
    generator = _generator().eval()
    context = torch.randn(2, 6, 7)
    params = generator(context, torch.ones(2, 6, dtype=torch.bool), _base_params())
    assert not torch.allclose(params[0][0], params[0][1])


def test_padding_does_not_change_the_generated_slots():
    generator = _generator().eval()
    context = torch.randn(1, 6, 7)
    mask = torch.ones(1, 6, dtype=torch.bool)
    mask[0, :2] = False
    noisy = context.clone()
    noisy[0, :2] = 99.0  # values at masked positions must not matter
    a = generator(context, mask, _base_params())
    b = generator(noisy, mask, _base_params())
    for x, y in zip(a, b):
        assert torch.allclose(x, y, atol=1e-6)


def test_generator_size_grows_linearly_with_slot_size():
    def count(rows: int) -> int:
        specs = [SlotSpec("w", (rows, rows)), SlotSpec("b", (rows,))]
        gen = ParameterGenerator(GeneratorConfig(context_dim=7, code_dim=8, rank=2), specs)
        return sum(p.numel() for p in gen.writer.parameters())

    small, double, quadruple = count(64), count(128), count(256)
    assert (quadruple - double) == pytest.approx(2 * (double - small), rel=1e-9)  # linear, not quadratic


class ConvNet(nn.Module):
    """Slots of every kind the generator writes: a kernel (4-D), a LayerNorm's vectors, a linear layer."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.norm = nn.LayerNorm(3 * 4 * 4)
        self.fc = nn.Linear(3 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(self.norm(torch.relu(self.conv(x)).flatten(1)))


def test_a_kernel_is_written_as_a_matrix_and_every_generator_parameter_of_a_conv_model_trains():
    torch.manual_seed(0)
    model = personalize(ConvNet(), SlotConfig(("conv", "norm", "fc")))
    specs = slot_specs(model)
    assert [s.name for s in specs] == ["conv.weight", "conv.bias", "norm.weight", "norm.bias", "fc.weight", "fc.bias"]
    assert matrix_shape((3, 2, 3, 3)) == (3, 18)
    generator = ParameterGenerator(GeneratorConfig(context_dim=7, code_dim=8, rank=2, dropout=0.0), specs)
    base = [p.detach() for p in model.parameters()]
    params = generator(torch.randn(3, 5, 7), torch.ones(3, 5, dtype=torch.bool), base)
    assert [tuple(p.shape) for p in params] == [(3, *s.shape) for s in specs]
    with bound_slots(model, params):
        model(torch.randn(3 * 2, 2, 4, 4)).pow(2).sum().backward()
    missing = [n for n, p in generator.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"parameters without gradient: {missing}"


def test_generator_size_grows_linearly_with_kernel_size():
    def count(channels: int) -> int:
        specs = [SlotSpec("k", (channels, channels, 3, 3)), SlotSpec("b", (channels,))]
        gen = ParameterGenerator(GeneratorConfig(context_dim=7, code_dim=8, rank=2), specs)
        return sum(p.numel() for p in gen.writer.parameters())

    small, double, quadruple = count(16), count(32), count(64)
    assert (quadruple - double) == pytest.approx(2 * (double - small), rel=1e-9)  # linear in out + in*k*k


def test_a_head_saved_under_its_old_parameter_names_loads():
    torch.manual_seed(0)
    saved = SlotMLP(SHAPE).state_dict()  # 0.weight, 0.bias, 1.weight, 1.bias
    legacy = {f"params.{i}": value for i, value in enumerate(saved.values())}  # runs made before the slot modules
    loaded = SlotMLP(SHAPE)
    loaded.load_state_dict(legacy)
    assert all(torch.equal(loaded.state_dict()[name], value) for name, value in saved.items())
