"""Exporters: the registry, parity of every target in its real runtime, slot checks, and what the files declare."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from export_fixtures import (BACKBONES, CANDIDATES, SEQ_LEN, TARGETS, exports, slot_sets,  # noqa: F401
                             tiny_conv_device_model, tiny_device_model)

from exporters import SUPPORT_MODULES
from toolkit.exporting.targets import exporter, target_modules, target_names
from toolkit.exporting.contract import (FP32_ATOL, ExportOptions, InputShapeError, ParityError, SignatureError, check_parity,
                                     example_args, example_slots)
from toolkit.errors import ConfigError, SlotShapeError, ToleranceExceeded

EXPORTERS_DIR = Path(__file__).resolve().parents[1] / "exporters"


# -- the registry ----------------------------------------------------------------------------------------------
def test_every_module_in_exporters_is_registered_or_declared_support():
    modules = {".".join(p.relative_to(EXPORTERS_DIR.parent).with_suffix("").parts).removesuffix(".__init__")
               for p in EXPORTERS_DIR.rglob("*.py") if p.relative_to(EXPORTERS_DIR).as_posix() != "__init__.py"}
    assert modules == set(target_modules().values()) | set(SUPPORT_MODULES)


@pytest.mark.parametrize("name", TARGETS)
def test_each_registered_target_exposes_the_contract(name):
    module = exporter(name)
    assert module.NAME == name
    assert re.fullmatch(r"model\.\w+", module.FILE_NAME)
    for function in ("export", "load", "validate"):
        assert callable(getattr(module, function)), f"{name} lacks {function}()"


def test_registry_names_every_target_and_rejects_unknown_ones():
    assert target_names() == list(TARGETS)
    with pytest.raises(ConfigError, match="unknown export target 'onnx'"):
        exporter("onnx")


def test_cli_offers_exactly_the_registered_targets():
    import click

    from cli import cli

    target = next(p for p in cli.commands["export"].params if p.name == "targets")
    assert isinstance(target.type, click.Choice)
    assert list(target.type.choices) == target_names() + ["all"]


def test_exporters_hold_no_task_specific_code():
    """Exporters read the device model's specs only; an image model goes through the same code."""
    banned = re.compile(r"recommend|\bhistory\b|\bcandidates?\b|sasrec|gru4rec|\bdin\b|\bitem(?:_|\b)|head\.\d|seq_len|"
                        r"RecModel|RecDeviceModel|\bimage|digits", re.IGNORECASE)
    for path in sorted(EXPORTERS_DIR.rglob("*.py")) + sorted((EXPORTERS_DIR.parent / "toolkit" / "export").glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not banned.search(line), f"{path.name}:{number} is task-specific: {line.strip()}"


def test_options_reject_unknown_modes_with_a_clear_message():
    with pytest.raises(ConfigError, match="quantize must be one of int8, none"):
        ExportOptions(quantize="fp16")
    with pytest.raises(ConfigError, match="palettization .* needs quantize='int8'"):
        ExportOptions(quantize="none", target_options=(("coreml", (("palettize_bits", 4),)),))
    with pytest.raises(ConfigError, match="coreml palettize_bits must be one of 0, 2, 4, 6, 8, got 3"):
        ExportOptions(target_options=(("coreml", (("palettize_bits", 3),)),))
    with pytest.raises(ConfigError, match="the tflite target takes no options of its own"):
        ExportOptions(target_options=(("tflite", (("palettize_bits", 4),)),))


def test_options_survive_their_json_round_trip():
    options = ExportOptions(quantize="int8", shape=(("seq_len", 12),), target_options=(("coreml", (("palettize_bits", 4),)),),
                            threads=2)
    assert ExportOptions.from_json(options.to_json()) == options
    older = {**options.to_json(), "coreml_palettize_bits": 4}  # a report.json of an earlier version
    del older["target_options"]
    assert ExportOptions.from_json(older) == options


# -- parity in the real runtimes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("target", TARGETS)
def test_fp32_program_matches_pytorch_on_three_slot_sets(exports, target, backbone):
    artifact, model, options = exports.get(target, backbone)
    report = exporter(target).validate(artifact, model, slot_sets(model), options)
    assert set(report.cases) == {"set-1", "set-2", "set-3", "random-probe"}
    assert all(case["max_abs_diff"] <= FP32_ATOL for case in report.cases.values())


@pytest.mark.parametrize("target", TARGETS)
def test_int8_program_compresses_static_layers_and_stays_close(exports, target):
    artifact, model, options = exports.get(target, "sasrec", "int8")
    fp32, _, _ = exports.get(target, "sasrec", "none")
    report = exporter(target).validate(artifact, model, slot_sets(model), options)
    assert report.cases["set-1"]["max_abs_diff"] > 0  # the static layers really changed ...
    assert "int8" in artifact.quantization and "none" in fp32.quantization  # ... and the artifact says how


@pytest.mark.parametrize("target", TARGETS)
def test_a_program_of_another_task_exports_through_the_same_code(tmp_path, target):
    """Convolutions over images, a classifier head as slots: nothing in the exporters is specific to one task."""
    model = tiny_conv_device_model()
    for quantize in ("none", "int8"):
        options = ExportOptions(quantize=quantize, min_quant_elements=0)
        artifact = exporter(target).export(model, options, tmp_path / quantize)
        report = exporter(target).validate(artifact, model, slot_sets(model), options)
        assert set(report.cases) == {"set-1", "set-2", "set-3", "random-probe"}
        if quantize == "none":
            assert all(case["max_abs_diff"] <= FP32_ATOL for case in report.cases.values()), report.cases


def test_tiny_model_is_a_few_kilobytes():
    model = tiny_device_model()
    assert sum(p.numel() * 4 for p in model.parameters()) < 16 * 1024


@pytest.mark.parametrize("target", TARGETS)
def test_swapping_slots_changes_the_runtime_output_exactly_as_pytorch(exports, target):
    artifact, model, options = exports.get(target)
    runner = exporter(target).load(artifact, model, options)
    inputs = model.example_inputs(3)
    first, second = example_slots(model, 21), example_slots(model, 22)
    swapped = {**first, model.slot_specs[0].name: second[model.slot_specs[0].name]}  # one slot only
    for before, after in ((first, second), (first, swapped)):
        runtime_change = runner([x.numpy() for x in inputs], after) - runner([x.numpy() for x in inputs], before)
        eager_change = model.run(inputs, after) - model.run(inputs, before)
        assert np.abs(eager_change).max() > 0.05  # the swap matters ...
        np.testing.assert_allclose(runtime_change, eager_change, atol=2 * FP32_ATOL)  # ... and the runtime follows


@pytest.mark.parametrize("target", TARGETS)
def test_same_slots_again_give_the_same_output(exports, target):
    artifact, model, options = exports.get(target)
    runner = exporter(target).load(artifact, model, options)
    inputs = [x.numpy() for x in model.example_inputs(4)]
    first = runner(inputs, example_slots(model, 1))
    runner(inputs, example_slots(model, 2))
    np.testing.assert_array_equal(runner(inputs, example_slots(model, 1)), first)


# -- what is rejected before the runtime runs ------------------------------------------------------------------------
@pytest.mark.parametrize("target", TARGETS)
def test_wrong_slot_shape_is_rejected_before_the_runtime_runs(exports, target):
    artifact, model, options = exports.get(target)
    runner = exporter(target).load(artifact, model, options)
    slots = {**example_slots(model), "head.0.weight": np.zeros((8, 3), np.float32)}
    with pytest.raises(SlotShapeError, match=r"slot 'head\.0\.weight' should have shape \[8, 8\], got \[8, 3\]"):
        runner([x.numpy() for x in model.example_inputs()], slots)


@pytest.mark.parametrize("target", TARGETS)
def test_missing_slot_is_rejected_with_its_name(exports, target):
    artifact, model, options = exports.get(target)
    runner = exporter(target).load(artifact, model, options)
    slots = example_slots(model)
    del slots["head.1.bias"]
    with pytest.raises(SlotShapeError, match=r"missing \['head.1.bias'\]"):
        runner([x.numpy() for x in model.example_inputs()], slots)


@pytest.mark.parametrize("target", TARGETS)
def test_wrong_input_shape_or_dtype_is_rejected(exports, target):
    artifact, model, options = exports.get(target)
    runner = exporter(target).load(artifact, model, options)
    history, candidates = (x.numpy() for x in model.example_inputs())
    with pytest.raises(InputShapeError, match=rf"input 'candidates' should have shape \[1, {CANDIDATES}\]"):
        runner([history, candidates[:, :2]], example_slots(model))
    with pytest.raises(InputShapeError, match="input 'history' should be int32, got int64"):
        runner([history.astype(np.int64), candidates], example_slots(model))


def test_non_finite_slots_are_rejected(exports):
    artifact, model, options = exports.get("executorch")
    runner = exporter("executorch").load(artifact, model, options)
    slots = example_slots(model)
    slots["head.0.bias"][0] = np.nan
    with pytest.raises(SlotShapeError, match="NaN or infinite"):
        runner([x.numpy() for x in model.example_inputs()], slots)


# -- validation catches broken programs ------------------------------------------------------------------------------
class _IgnoresFirstSlot(type(tiny_device_model())):
    """A broken program: slot 0 is replaced by a constant, as if a slot had been baked in at export."""

    def forward(self, history, candidates, *slots):
        import torch

        return super().forward(history, candidates, torch.full(tuple(slots[0].shape), 0.1), *slots[1:])


def _baked(backbone="sasrec"):
    import copy

    good = tiny_device_model(backbone)
    broken = copy.deepcopy(good)
    broken.__class__ = _IgnoresFirstSlot
    return good, broken


@pytest.mark.parametrize("target", ["executorch", "tflite"])
def test_a_baked_in_slot_fails_validation_naming_target_output_and_diff(tmp_path, target):
    good, broken = _baked()
    artifact = exporter(target).export(broken, ExportOptions(quantize="none"), tmp_path)
    with pytest.raises(ParityError, match=rf"{target}: output 'scores' differs from PyTorch eager by max abs diff"):
        exporter(target).validate(artifact, good, slot_sets(good), ExportOptions(quantize="none"))
    assert issubclass(ParityError, ToleranceExceeded)


def test_coreml_rejects_a_program_that_ignores_a_slot(tmp_path):
    good, broken = _baked()
    artifact = exporter("coreml").export(broken, ExportOptions(quantize="none"), tmp_path)
    with pytest.raises(SignatureError, match=r"coreml: program inputs \['head_0_weight'\] do not reach the output"):
        exporter("coreml").validate(artifact, good, slot_sets(good), ExportOptions(quantize="none"))


@pytest.mark.parametrize("target", TARGETS)
def test_a_program_of_other_shapes_fails_the_signature_check(exports, target):
    artifact, model, options = exports.get(target)
    wider = tiny_device_model(candidates=CANDIDATES + 1)
    with pytest.raises(SignatureError, match=f"{target}: program inputs"):
        exporter(target).validate(artifact, wider, slot_sets(wider), options)


# -- programs written for the runtimes -------------------------------------------------------------------------------
@pytest.mark.parametrize("backbone", BACKBONES)
def test_the_export_form_computes_the_device_model(backbone):
    """for_export() may rewrite a program for the runtimes (DIN's score layer, one head call for a user state), but
    it computes the same scores, and leaves the model it was made from as it was."""
    import torch

    model = tiny_device_model(backbone)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    program = model.for_export()
    for seed in range(3):
        args = example_args(model, seed)
        with torch.no_grad():
            np.testing.assert_allclose(program(*args).numpy(), model(*args).numpy(), atol=1e-5, rtol=0)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("backbone", BACKBONES)
def test_executorch_runs_the_slot_layers_inside_xnnpack(backbone):
    """Linears whose weights are program inputs (the slots) go to XNNPACK, not to the portable addmm loop."""
    import torch
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower

    from exporters.executorch import partitioner

    model = tiny_device_model(backbone)
    exported = torch.export.export(model.for_export(), example_args(model), strict=False)
    edge = to_edge_transform_and_lower(exported, partitioner=[partitioner()])
    table = get_delegation_info(edge.exported_program().graph_module).get_operator_delegation_dataframe()
    outside = set(table[table.occurrences_in_non_delegated_graphs > 0].op_type)
    assert not outside & {"aten_addmm_default", "aten_mm_default", "aten_linear_default", "aten_bmm_default"}, outside


@pytest.mark.parametrize("target", ["executorch", "tflite"])
def test_layers_over_max_int8_rows_stay_fp32(tmp_path, target):
    """DIN's pair layer transforms SEQ_LEN * CANDIDATES rows per call; with a lower limit it is not quantized."""
    model = tiny_device_model("din")
    rows = SEQ_LEN * CANDIDATES
    limits = {"all": rows, "fewer": rows - 1}
    artifacts = {name: exporter(target).export(model, ExportOptions(min_quant_elements=0, max_int8_rows=limit),
                                               tmp_path / name) for name, limit in limits.items()}
    if target == "executorch":
        assert "fp32, over" not in artifacts["all"].quantization
        assert f"fp32, over {rows - 1} rows per call: model.encoder.from_product" in artifacts["fewer"].quantization
    else:
        from exporters.tflite import _count_int8_tensors

        assert _count_int8_tensors(artifacts["fewer"].path) == _count_int8_tensors(artifacts["all"].path) - 1
    options = ExportOptions(min_quant_elements=0, max_int8_rows=rows - 1)
    exporter(target).validate(artifacts["fewer"], model, slot_sets(model), options)
    with pytest.raises(ConfigError, match="max_int8_rows must be >= 1"):
        ExportOptions(max_int8_rows=0)


def test_parity_needs_three_slot_sets(exports):
    artifact, model, options = exports.get("executorch")
    runner = exporter("executorch").load(artifact, model, options)
    with pytest.raises(ValueError, match="at least 3 slot sets, got 2"):
        check_parity(runner, model, slot_sets(model, count=2), compressed=False)


# -- Core ML specifics: the numpy MIL evaluator ----------------------------------------------------------------------
def test_coreml_batched_evaluation_equals_one_call_at_a_time(exports):
    artifact, model, options = exports.get("coreml", "din")
    runner = exporter("coreml").load(artifact, model, options)
    calls = [[x.numpy() for x in model.example_inputs(seed)] for seed in range(20)]
    slots = example_slots(model, 5)
    batched = runner.call_many(calls, slots)
    single = [runner._run(inputs + [slots[s.name] for s in model.slot_specs]) for inputs in calls]
    np.testing.assert_allclose(np.stack(batched), np.stack(single), atol=1e-6)


def test_coreml_palettized_weights_decode_like_coremltools(tmp_path):
    import coremltools as ct
    from coremltools.converters.mil.mil.ops.defs.iOS16.constexpr_ops import constexpr_lut_to_dense

    from exporters.coreml.mil import CONSTEXPR_OPS

    rng = np.random.default_rng(0)
    for nbits in (2, 4, 6):
        lut = rng.normal(size=2 ** nbits).astype(np.float32)
        shape = np.array([7, 5], np.uint32)
        packed = rng.integers(0, 256, size=int(np.ceil(nbits * 35 / 8)), dtype=np.uint8)
        ours = CONSTEXPR_OPS["constexpr_lut_to_dense"]({"lut": lut, "indices": packed, "shape": shape})
        np.testing.assert_array_equal(ours, constexpr_lut_to_dense.decompress(lut, packed, shape))
    del ct

    model = tiny_device_model("gru4rec")
    options = ExportOptions(quantize="int8", target_options=(("coreml", (("palettize_bits", 6),)),), min_quant_elements=0)
    artifact = exporter("coreml").export(model, options, tmp_path)
    assert "6-bit k-means palettized" in artifact.quantization
    exporter("coreml").validate(artifact, model, slot_sets(model), options)


def test_coreml_features_carry_the_spec_names_and_descriptions(exports):
    import coremltools as ct

    artifact, model, _ = exports.get("coreml")
    spec = ct.models.MLModel(str(artifact.path), skip_model_load=True).get_spec()
    assert [f.name for f in spec.description.input] == ["history", "candidates", "head_0_weight", "head_0_bias",
                                                        "head_1_weight", "head_1_bias"]
    assert spec.description.output[0].name == "scores"
    assert spec.description.input[0].shortDescription == model.input_specs[0].description


@pytest.mark.skipif(sys.platform != "darwin", reason="MLModel.predict needs the Core ML runtime, only on macOS")
def test_coreml_predict_matches_pytorch_on_macos(exports):
    from exporters.coreml import PredictRunner

    artifact, model, options = exports.get("coreml")
    check_parity(PredictRunner(artifact, model), model, slot_sets(model), compressed=False)
