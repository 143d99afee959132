"""TFLite target: model.tflite from litert-torch, int8 by ai-edge-quantizer, run with ai-edge-litert's Interpreter."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Mapping

import numpy as np

from exporters.base import (NUMPY_DTYPES, Artifact, ExportOptions, ParityReport, Runner, check_parity,
                            check_signature, example_args, stage, worth_quantizing)


NAME = "tflite"
FILE_NAME = "model.tflite"
RUNTIME_MODULES = ("ai_edge_litert.interpreter",)  # what load() imports
SIGNATURE = "serving_default"  # litert-torch's one signature; its inputs are args_0..args_N in forward's order


def export(model, options: ExportOptions, out_dir: Path) -> Artifact:
    """litert_torch.convert at the fixed shapes -> (int8: dynamic_wi8_afp32 recipe) -> write model.tflite.

    ai-edge-quantizer only quantizes constant weights, so the slot layers (FULLY_CONNECTED / BATCH_MATMUL fed by
    program inputs) stay fp32 while the static layers, embedding tables included, get int8 weights.
    """
    import litert_torch

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    program = copy.deepcopy(model).eval()
    path = Path(out_dir) / FILE_NAME
    with stage(NAME, "convert (litert-torch)"):
        converted = litert_torch.convert(program, example_args(model))
        float_bytes = bytes(converted.model_content())
    if options.compressed:
        with stage(NAME, "quantize (ai-edge-quantizer dynamic_wi8_afp32)"):
            path.write_bytes(_quantize(float_bytes, options.min_quant_elements))
    else:
        path.write_bytes(float_bytes)
    how = "none (fp32)"
    if options.compressed:
        how = (f"ai-edge-quantizer dynamic_wi8_afp32: int8 per-channel weights on constant tensors of at least "
               f"{options.min_quant_elements} elements ({_count_int8_tensors(path)} tensors), fp32 activations")
    names = tuple(f"args_{i}" for i in range(len(model.input_specs) + len(model.slot_specs)))
    notes = (f"call signature {SIGNATURE!r}: args_0..args_{len(names) - 1} are the inputs then the slots, "
             f"in call_signature order; the output is output_0",)
    return Artifact(NAME, path, runtime_version(), how, names, "output_0", "file", notes)


def _quantize(float_model: bytes, min_elements: int) -> bytes:
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    rules = recipe.dynamic_wi8_afp32()
    for rule in rules:
        rule["op_config"]["min_weight_elements"] = int(min_elements)
    for scope in _scopes_not_worth_quantizing(float_model, min_elements):  # later rules win
        rules.append({"regex": f"^{re.escape(scope)}$", "operation": "*",
                      "algorithm_key": AlgorithmName.NO_QUANTIZE.value, "op_config": {}})
    tool = quantizer.Quantizer(float_model, rules)
    return bytes(tool.quantize(enable_progress_bar=False, enable_progress_report=False).quantized_model)


def _scopes_not_worth_quantizing(float_model: bytes, min_elements: int) -> list[str]:
    """Scopes (output names) of ops whose constant weights per-channel int8 would not shrink, e.g. one column."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    model = fb.read_model(float_model)
    scopes = []
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            for index in op.inputs:
                tensor = subgraph.tensors[index] if index >= 0 else None
                data = model.buffers[tensor.buffer].data if tensor is not None else None
                if data is not None and len(data) and tensor.shape is not None and len(tensor.shape) >= 1 \
                        and int(np.prod(tensor.shape)) >= min_elements \
                        and not worth_quantizing([int(x) for x in tensor.shape], min_elements):
                    scopes.append(fb.get_op_scope(op, subgraph.tensors))
    return scopes


def _count_int8_tensors(path: Path) -> int:
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(path)).get_tensor_details()
    return sum(1 for d in details if d["dtype"] == np.int8)


def runtime_version() -> str:
    from importlib.metadata import version

    return f"ai-edge-litert {version('ai-edge-litert')} Interpreter (LiteRT, XNNPACK delegate)"


class TFLiteRunner(Runner):
    """ai_edge_litert.interpreter.Interpreter(...).get_signature_runner('serving_default')."""

    def __init__(self, artifact: Artifact, model, threads: int = 1):
        super().__init__(artifact, model)
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(artifact.path), num_threads=threads)
        self._runner = self._interpreter.get_signature_runner(SIGNATURE)
        self._names = list(artifact.input_names)

    def signature(self) -> tuple[list, list]:
        """(name, shape, dtype) of each signature input and output."""
        ins = self._runner.get_input_details()
        outs = self._runner.get_output_details()
        as_tuple = lambda name, d: (name, tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]).name)  # noqa: E731
        return ([as_tuple(n, ins[n]) for n in sorted(ins, key=_arg_index)],
                [as_tuple(n, outs[n]) for n in sorted(outs)])

    def _run(self, args: list[np.ndarray]) -> np.ndarray:
        outputs = self._runner(**dict(zip(self._names, args)))
        return np.array(outputs[self.artifact.output_name], copy=True)


def _arg_index(name: str) -> int:
    return int(name.rsplit("_", 1)[1]) if name.rsplit("_", 1)[-1].isdigit() else 1 << 30


def load(artifact: Artifact, model, options: ExportOptions | None = None) -> TFLiteRunner:
    return TFLiteRunner(artifact, model, (options or ExportOptions()).threads)


def validate(artifact: Artifact, model, slot_sets: Mapping[str, Mapping[str, np.ndarray]],
             options: ExportOptions) -> ParityReport:
    """Check the signature's inputs and output against the specs, then parity with PyTorch on every slot set."""
    runner = load(artifact, model, options)
    found_in, found_out = runner.signature()
    specs = list(model.input_specs) + list(model.slot_specs)
    check_signature(NAME, "inputs", found_in,
                    [(n, tuple(s.shape), np.dtype(NUMPY_DTYPES[s.dtype]).name) for n, s in zip(artifact.input_names, specs)])
    out = model.output_spec
    check_signature(NAME, "outputs", found_out,
                    [(artifact.output_name, tuple(out.shape), np.dtype(NUMPY_DTYPES[out.dtype]).name)])
    return check_parity(runner, model, slot_sets, options.compressed)
