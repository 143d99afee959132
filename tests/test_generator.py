"""The parameter generator: every parameter trains, output shapes follow the slot spec, cost is linear in slot size."""

from __future__ import annotations

import pytest
import torch

from toolkit.model.generator import GeneratorConfig, ParameterGenerator
from toolkit.tasks.head import HeadShape, apply_head
from toolkit.protocol.slots import SlotSpec

SHAPE = HeadShape(in_dim=6, hidden_dim=5, out_dim=4)


def _generator(**overrides) -> ParameterGenerator:
    return ParameterGenerator(GeneratorConfig(context_dim=7, code_dim=8, rank=2, n_candidates=3, **overrides),
                              SHAPE.slot_specs())


def _base_params():
    torch.manual_seed(0)
    return [torch.randn(*s.shape) for s in SHAPE.slot_specs()]


@pytest.mark.parametrize("stabilizer,sample_dim", [(True, None), (False, None), (True, 3)])
def test_every_generator_parameter_receives_a_gradient(stabilizer, sample_dim):
    torch.manual_seed(0)
    generator = _generator(stabilizer=stabilizer, sample_dim=sample_dim, dropout=0.0)
    context, mask = torch.randn(3, 5, 7), torch.ones(3, 5, dtype=torch.bool)
    mask[0, :2] = False
    params = generator(context, mask, _base_params())
    loss = apply_head(torch.randn(3, 2, 6), params).pow(2).sum()
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
    for p, b, spec in zip(params, base, SHAPE.slot_specs()):
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
