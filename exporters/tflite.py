"""TFLite target: model.tflite from litert-torch, int8 by ai-edge-quantizer, run with ai-edge-litert's Interpreter."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np

from exporters.base import stage, worth_quantizing
from toolkit.exporting.contract import (NUMPY_DTYPES, Artifact, ExportOptions, ParityReport, Runner, check_parity,
                                     check_signature, example_args)


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
    program = model.for_export()  # the same function, in the form written for the runtimes
    path = Path(out_dir) / FILE_NAME
    with stage(NAME, "convert (litert-torch)"):
        converted = litert_torch.convert(program, example_args(model))
        float_bytes = bytes(converted.model_content())
    if options.compressed:
        with stage(NAME, "quantize (ai-edge-quantizer dynamic_wi8_afp32)"):
            path.write_bytes(_quantize(float_bytes, options.min_quant_elements, options.max_int8_rows))
    else:
        path.write_bytes(float_bytes)
    how = "none (fp32)"
    if options.compressed:
        how = (f"ai-edge-quantizer dynamic_wi8_afp32: int8 per-channel weights on constant tensors of at least "
               f"{options.min_quant_elements} elements ({_count_int8_tensors(path)} tensors), fp32 activations; "
               f"layers over {options.max_int8_rows} rows per call stay fp32")
    names = tuple(f"args_{i}" for i in range(len(model.input_specs) + len(model.slot_specs)))
    notes = (f"call signature {SIGNATURE!r}: args_0..args_{len(names) - 1} are the inputs then the slots, "
             f"in call_signature order; the output is output_0",)
    return Artifact(NAME, path, runtime_version(), how, names, "output_0", "file", notes)


def _quantize(float_model: bytes, min_elements: int, max_rows: int) -> bytes:
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    rules = recipe.dynamic_wi8_afp32()
    for rule in rules:
        rule["op_config"]["min_weight_elements"] = int(min_elements)
    for scope in _scopes_not_worth_quantizing(float_model, min_elements, max_rows):  # later rules win
        rules.append({"regex": f"^{re.escape(scope)}$", "operation": "*",
                      "algorithm_key": AlgorithmName.NO_QUANTIZE.value, "op_config": {}})
    tool = quantizer.Quantizer(float_model, rules)
    return bytes(tool.quantize(enable_progress_bar=False, enable_progress_report=False).quantized_model)


def _scopes_not_worth_quantizing(float_model: bytes, min_elements: int, max_rows: int) -> list[str]:
    """Scopes (output names) of ops whose constant weights per-channel int8 would not shrink, e.g. one column, and
    of layers with activations quantized at run time (fully connected, convolution, batch matmul) that produce more
    than `max_rows` rows per call: quantizing that many rows costs more time than their int8 weights save."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    model = fb.read_model(float_model)
    scopes = []
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) in _dynamic_int8_ops() and op.outputs[0] >= 0:
                shape = subgraph.tensors[op.outputs[0]].shape
                if shape is not None and len(shape) >= 2 and int(np.prod(shape[:-1])) > max_rows:
                    scopes.append(fb.get_op_scope(op, subgraph.tensors))
                    continue
            for index in op.inputs:
                tensor = subgraph.tensors[index] if index >= 0 else None
                data = model.buffers[tensor.buffer].data if tensor is not None else None
                if data is not None and len(data) and tensor.shape is not None and len(tensor.shape) >= 1 \
                        and int(np.prod(tensor.shape)) >= min_elements \
                        and not worth_quantizing([int(x) for x in tensor.shape], min_elements):
                    scopes.append(fb.get_op_scope(op, subgraph.tensors))
    return scopes


def _dynamic_int8_ops() -> set[int]:
    """Builtin op codes whose dynamic-range int8 form quantizes the op's input at every call."""
    from ai_edge_litert.schema_py_generated import BuiltinOperator

    return {BuiltinOperator.FULLY_CONNECTED, BuiltinOperator.CONV_2D, BuiltinOperator.DEPTHWISE_CONV_2D,
            BuiltinOperator.BATCH_MATMUL}


def _count_int8_tensors(path: Path) -> int:
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(path)).get_tensor_details()
    return sum(1 for d in details if d["dtype"] == np.int8)


def runtime_version() -> str:
    from importlib.metadata import version

    return f"ai-edge-litert {version('ai-edge-litert')} Interpreter (LiteRT, XNNPACK delegate)"


class TFLiteRunner(Runner):
    """ai_edge_litert.interpreter.Interpreter(...): the signature's tensors set, invoked and read by index.

    The signature runner's call resizes every input and calls AllocateTensors each time (about 10 µs of Python and
    bindings here, two thirds of a trivial program's call); the program's shapes are fixed, so this runner
    allocates once and each call only copies the inputs in, invokes, and copies the output out.
    """

    def __init__(self, artifact: Artifact, model, threads: int = 1):
        super().__init__(artifact, model)
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(artifact.path), num_threads=threads)
        runner = self._interpreter.get_signature_runner(SIGNATURE)
        self._names = list(artifact.input_names)
        self._inputs, self._outputs = runner.get_input_details(), runner.get_output_details()
        self._input_index = [self._inputs[name]["index"] if name in self._inputs else -1 for name in self._names]
        self._output_index = self._outputs.get(artifact.output_name, {}).get("index", -1)
        # set_tensor/invoke/get_tensor address the primary subgraph: use them only when it is the signature's
        primary_in = sorted(d["index"] for d in self._interpreter.get_input_details())
        primary_out = [d["index"] for d in self._interpreter.get_output_details()]
        self._by_index = sorted(self._input_index) == primary_in and primary_out == [self._output_index]
        self._runner = None if self._by_index else runner  # a live signature runner makes invoke() refuse to run
        del runner
        if self._by_index:
            self._interpreter.allocate_tensors()

    def signature(self) -> tuple[list, list]:
        """(name, shape, dtype) of each signature input and output."""
        ins, outs = self._inputs, self._outputs
        as_tuple = lambda name, d: (name, tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]).name)  # noqa: E731
        return ([as_tuple(n, ins[n]) for n in sorted(ins, key=_arg_index)],
                [as_tuple(n, outs[n]) for n in sorted(outs)])

    def _run(self, args: list[np.ndarray]) -> np.ndarray:
        if not self._by_index:
            outputs = self._runner(**dict(zip(self._names, args)))
            return np.array(outputs[self.artifact.output_name], copy=True)
        for index, value in zip(self._input_index, args):
            self._interpreter.set_tensor(index, value)  # copies into the interpreter's input buffer
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output_index)  # a copy


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
