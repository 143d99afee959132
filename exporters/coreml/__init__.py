"""Core ML target: model.mlpackage (ML program, iOS 17+), slots as fp32 inputs; checked by a numpy MIL evaluator."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Mapping

import numpy as np

from exporters.base import stage, worth_quantizing
from toolkit.exporting.contract import (Artifact, ExportOptions, ParityReport, Runner, SignatureError, check_parity,
                                     check_signature, example_args)
from toolkit.errors import ConfigError


NAME = "coreml"
FILE_NAME = "model.mlpackage"
DEPLOYMENT_TARGET = "iOS17"  # minimum_deployment_target of the converted program
ARRAY_DTYPES = {"int32": "INT32", "float32": "FLOAT32"}  # spec multiArrayType data types
EVAL_ELEMENTS = 400_000  # the numpy evaluator batches calls until an intermediate holds about this many floats
MAX_EVAL_CHUNK = 64  # and never more calls than this at once (larger batches only thrash the caches)


PALETTIZE_BITS = (0, 2, 4, 6, 8)  # option palettize_bits: k-means palettize static weights to N bits; 0 = linear int8


def check_options(options: ExportOptions) -> None:
    """This target's own options (ExportOptions.target_options["coreml"]): palettize_bits."""
    own = options.for_target(NAME)
    unknown = sorted(set(own) - {"palettize_bits"})
    if unknown:
        raise ConfigError(f"unknown coreml option(s) {', '.join(unknown)}; it takes palettize_bits")
    bits = own.get("palettize_bits", 0)
    if bits not in PALETTIZE_BITS:
        raise ConfigError(f"coreml palettize_bits must be one of {', '.join(map(str, PALETTIZE_BITS))}, got {bits}")
    if bits and options.quantize != "int8":
        raise ConfigError("palettization compresses static layers; it needs quantize='int8' (not 'none')")


def export(model, options: ExportOptions, out_dir: Path) -> Artifact:
    """torch.export -> ct.convert (fp32 compute) -> (int8: linear_quantize_weights, or palettize) -> rename -> save."""
    import coremltools as ct
    import torch

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    program = model.for_export()  # the same function, in the form written for the runtimes
    with stage(NAME, "torch.export"):
        exported = torch.export.export(program, example_args(model), strict=False).run_decompositions()
        _float_fill_values(exported)
    with stage(NAME, "convert (coremltools)"):
        mlmodel = ct.convert(exported, convert_to="mlprogram",
                             minimum_deployment_target=getattr(ct.target, DEPLOYMENT_TARGET),
                             compute_precision=ct.precision.FLOAT32)
    how = "none (fp32)"
    if options.compressed:
        with stage(NAME, "compress weights (coremltools.optimize)"):
            mlmodel, how = _compress(mlmodel, options)
    names = coreml_names(model)
    path = Path(out_dir) / FILE_NAME
    with stage(NAME, "rename features and save"):
        _rename_and_save(mlmodel, model, names, path)
    notes = ("inputs are MLMultiArray features named as input_names; the output feature is named output_name",
             "fp32 compute (CPU/GPU); the Neural Engine would need an fp16 export")
    return Artifact(NAME, path, runtime_version(), how, tuple(names), model.output_spec.name, "zip", notes)


def coreml_names(model) -> list[str]:
    """Feature names: the spec names with characters outside [A-Za-z0-9_] replaced by '_' ('a.0.w' -> 'a_0_w')."""
    names = []
    for spec in list(model.input_specs) + list(model.slot_specs):
        name = re.sub(r"[^A-Za-z0-9_]", "_", spec.name)
        name = name if re.match(r"[A-Za-z_]", name) else f"_{name}"
        if name in names:
            raise SignatureError(f"{NAME}: two program arguments map to the feature name {name!r}")
        names.append(name)
    return names


def _float_fill_values(exported) -> None:
    """coremltools 9 types full_like by its Python value (0 -> int32); make the value float for float tensors."""
    import torch

    for node in exported.graph.nodes:
        if node.target == torch.ops.aten.full_like.default and node.args[0].meta["val"].dtype.is_floating_point:
            node.args = (node.args[0], float(node.args[1])) + tuple(node.args[2:])


def _compress(mlmodel, options: ExportOptions):
    import warnings

    import coremltools.optimize.coreml as cto

    skip = {op.name: None for op in mlmodel._mil_program.functions["main"].operations  # one scale per row ...
            if op.op_type == "const" and isinstance(op.outputs[0].val, np.ndarray)  # ... would not pay for itself
            and op.outputs[0].val.dtype.kind == "f" and op.outputs[0].val.size >= options.min_quant_elements
            and not worth_quantizing(op.outputs[0].val.shape, options.min_quant_elements)}
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")  # all-zero rows (padding) give 0/0 scales; they dequantize to 0 exactly
        bits = options.for_target(NAME).get("palettize_bits", 0)
        if bits:
            config = cto.OpPalettizerConfig(nbits=bits, mode="kmeans",
                                            weight_threshold=options.min_quant_elements)
            compressed = cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=config,
                                                                                op_name_configs=skip))
            kind = f"{bits}-bit k-means palettized weights"
        else:
            config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel",
                                                 weight_threshold=options.min_quant_elements)
            compressed = cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=config,
                                                                                      op_name_configs=skip))
            kind = "int8 linear symmetric per-channel weights"
    count = sum(1 for op in compressed._mil_program.functions["main"].operations if op.op_type.startswith("constexpr_"))
    return compressed, (f"coremltools.optimize.coreml: {kind} on constants of at least {options.min_quant_elements} "
                        f"elements ({count} tensors), fp32 compute")


def _rename_and_save(mlmodel, model, names: list[str], path: Path) -> None:
    import coremltools as ct

    spec = mlmodel.get_spec()
    found = [f.name for f in spec.description.input]
    if len(found) != len(names):
        raise SignatureError(f"{NAME}: converted program has inputs {found}, expected {len(names)}: {names}")
    for old, new in zip(found, names):
        if old != new:
            ct.utils.rename_feature(spec, old, new)
    output = spec.description.output[0].name
    if output != model.output_spec.name:
        ct.utils.rename_feature(spec, output, model.output_spec.name)
    for feature, tensor in zip(spec.description.input, model.input_specs):
        feature.shortDescription = tensor.description
    for feature, slot in zip(spec.description.input[len(model.input_specs):], model.slot_specs):
        feature.shortDescription = f"slot {slot.name} (fp32)"
    spec.description.output[0].shortDescription = model.output_spec.description
    ct.utils.save_spec(spec, str(path), weights_dir=mlmodel.weights_dir)


def runtime_version() -> str:
    from importlib.metadata import version

    where = "MLModel.predict" if sys.platform == "darwin" else "numpy MIL evaluator (Linux has no Core ML runtime)"
    return f"coremltools {version('coremltools')} ML program ({DEPLOYMENT_TARGET}); checked with {where}"


class MilRunner(Runner):
    """Runs the saved package's MIL program with numpy; calls of one device are evaluated in batches."""

    is_runtime = False  # a reference interpreter: checks numbers, says nothing about Core ML's speed

    def __init__(self, artifact: Artifact, model, threads: int = 1):
        super().__init__(artifact, model)
        from exporters.coreml.mil import MilProgram

        self.program = MilProgram.from_package(artifact.path)
        self.threads = threads
        self._names = list(artifact.input_names)
        self._per_call = self._names[: len(self.input_specs)]

    def _run(self, args: list[np.ndarray]) -> np.ndarray:
        with _blas_threads(self.threads):
            return np.array(self.program.run(dict(zip(self._names, args)))[self.artifact.output_name], copy=True)

    def _run_many(self, calls: list[list[np.ndarray]], slot_args: list[np.ndarray]) -> list[np.ndarray]:
        with _blas_threads(self.threads):
            return self._evaluate_many(calls, slot_args)

    def _evaluate_many(self, calls: list[list[np.ndarray]], slot_args: list[np.ndarray]) -> list[np.ndarray]:
        outputs: list[np.ndarray] = []
        slots = dict(zip(self._names[len(self.input_specs):], slot_args))
        size = max(1, min(MAX_EVAL_CHUNK, EVAL_ELEMENTS // self.program.largest_value))
        for start in range(0, len(calls), size):
            chunk = calls[start : start + size]
            stacked = {name: np.stack([c[i] for c in chunk]) for i, name in enumerate(self._per_call)}
            result = self.program.run({**stacked, **slots}, batched=self._per_call)[self.artifact.output_name]
            outputs.extend(np.array(row, copy=True) for row in result)
        return outputs


def _blas_threads(threads: int):
    """Limit numpy's BLAS threads: on a busy machine its thread pool spins and small GEMMs get 10x slower."""
    from contextlib import nullcontext

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # comes with scikit-learn; without it numpy keeps its default
        return nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


class PredictRunner(Runner):
    """MLModel.predict (macOS only)."""

    def __init__(self, artifact: Artifact, model):
        super().__init__(artifact, model)
        import coremltools as ct

        self._model = ct.models.MLModel(str(artifact.path), compute_units=ct.ComputeUnit.CPU_ONLY)
        self._names = list(artifact.input_names)

    def _run(self, args: list[np.ndarray]) -> np.ndarray:
        return np.array(self._model.predict(dict(zip(self._names, args)))[self.artifact.output_name], copy=True)


def load(artifact: Artifact, model, options: ExportOptions | None = None) -> Runner:
    """MLModel.predict on macOS; elsewhere the numpy evaluator of the saved program."""
    threads = (options or ExportOptions()).threads
    return PredictRunner(artifact, model) if sys.platform == "darwin" else MilRunner(artifact, model, threads)


def validate(artifact: Artifact, model, slot_sets: Mapping[str, Mapping[str, np.ndarray]],
             options: ExportOptions) -> ParityReport:
    """Check features and slot wiring against the specs, then numpy-MIL parity (and MLModel.predict on macOS)."""
    check_package(artifact, model)
    report = check_parity(MilRunner(artifact, model, options.threads), model, slot_sets, options.compressed)
    if sys.platform == "darwin":
        predicted = check_parity(PredictRunner(artifact, model), model, slot_sets, options.compressed)
        report.cases.update({f"predict:{k}": v for k, v in predicted.cases.items()})
    return report


def check_package(artifact: Artifact, model) -> None:
    """The saved package's input/output features match the specs, and every input reaches the output."""
    import coremltools as ct
    from coremltools.proto import FeatureTypes_pb2

    spec = ct.models.MLModel(str(artifact.path), skip_model_load=True).get_spec()
    dtype_name = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name

    def features(items):
        return [(f.name, tuple(int(d) for d in f.type.multiArrayType.shape), dtype_name(f.type.multiArrayType.dataType))
                for f in items]

    tensors = list(model.input_specs) + list(model.slot_specs)
    check_signature(NAME, "inputs", features(spec.description.input),
                    [(n, tuple(t.shape), ARRAY_DTYPES[t.dtype]) for n, t in zip(artifact.input_names, tensors)])
    out = model.output_spec
    check_signature(NAME, "outputs", features(spec.description.output),
                    [(artifact.output_name, tuple(out.shape), ARRAY_DTYPES[out.dtype])])
    function = spec.mlProgram.functions["main"]
    block = function.block_specializations[function.opset]
    producers = {out.name: op for op in block.operations for out in op.outputs}
    live, pending = set(), list(block.outputs)
    while pending:  # everything the output depends on (Core ML keeps an unused input alive with a dead identity)
        name = pending.pop()
        if name not in live:
            live.add(name)
            op = producers.get(name)
            pending += [b.name for arg in (op.inputs.values() if op else ()) for b in arg.arguments
                        if b.WhichOneof("binding") == "name"]
    used = live
    unused = [n for n in artifact.input_names if n not in used]
    if unused:
        raise SignatureError(f"{NAME}: program inputs {unused} do not reach the output (a slot would be ignored)")
