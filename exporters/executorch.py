"""ExecuTorch target: model.pte lowered to XNNPACK, slots as fp32 inputs, run with executorch.runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from exporters.base import linear_rows, stage, worth_quantizing
from toolkit.exporting.contract import (Artifact, ExportOptions, ParityReport, Runner, check_parity, check_signature,
                                     example_args)
from toolkit.exporting.program import DeviceModel
from toolkit.model.slots import is_slot_module


NAME = "executorch"
FILE_NAME = "model.pte"
RUNTIME_MODULES = ("executorch.runtime", "executorch.kernels.quantized")  # what load() imports
ET_DTYPES = {"int32": 3, "float32": 6}  # torch ScalarType codes that executorch TensorInfo.dtype() returns


def export(model: DeviceModel, options: ExportOptions, out_dir: Path) -> Artifact:
    """torch.export -> (int8: quantize static layers) -> lower to XNNPACK -> write model.pte."""
    from executorch.exir import to_edge_transform_and_lower

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    program = model.for_export()  # the same function, in the form written for the runtimes
    args = example_args(model)
    embeddings: list[str] = []
    linears: list[str] = []
    kept: list[str] = []
    if options.compressed:
        with stage(NAME, "quantize embeddings"):
            embeddings = _quantize_embeddings(program, options.min_quant_elements)
    with stage(NAME, "torch.export"):
        exported = torch.export.export(program, args, strict=False)
    if options.compressed:
        with stage(NAME, "quantize linear layers (PT2E)"):
            exported, linears, kept = _quantize_linears(exported, program, args, options)
    with stage(NAME, "lower to XNNPACK"):
        edge = to_edge_transform_and_lower(exported, partitioner=[partitioner()])
    with stage(NAME, "serialize"):
        path = Path(out_dir) / FILE_NAME
        path.write_bytes(edge.to_executorch().buffer)
    parts = [f"int8 per-row weight-only embeddings (embedding_byte): {', '.join(embeddings)}"] if embeddings else []
    parts += [f"int8 dynamic per-channel linear layers (XNNPACK): {', '.join(linears)}"] if linears else []
    parts += [f"fp32, over {options.max_int8_rows} rows per call: {', '.join(kept)}"] if kept else []
    how = "; ".join(parts) or "none: no static tensor large enough" if options.compressed else "none (fp32)"
    names = tuple(s.name for s in model.input_specs) + tuple(s.name for s in model.slot_specs)
    notes = ("call Module.forward with the inputs then the slots, in call_signature order",)
    if embeddings:
        notes += ("link ExecuTorch's quantized kernels (quantized_decomposed::embedding_byte)",)
    return Artifact(NAME, path, runtime_version(), how, names, model.output_spec.name, "file", notes)


def runtime_version() -> str:
    from importlib.metadata import version

    return f"executorch {version('executorch')} (XNNPACK delegate)"


def partitioner():
    """XNNPACK's partitioner, also taking the linear layers whose weight and bias are program inputs (the slots).

    XNNPACK's default linear configs take a layer only when its weight is a static parameter, which they pack
    once at load. A slot layer's weight arrives with each call, so it stayed outside the delegate as the portable
    `aten.addmm` kernel (a plain loop: 420 of a 730 µs call, measured) and split the graph around it. XNNPACK's
    fully-connected also runs with run-time weights (packed at each call): these configs send exactly the fp32
    linears without a static weight there and leave every other op, static linears and convolutions included,
    to the stock configs (the stock `force_non_static_weights_for_f32_linear` switch would make every fp32
    linear's weight a run-time one, and XNNPACK then rejects a one-channel convolution's node).
    """
    from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS
    from executorch.backends.xnnpack.partition.config.gemm_configs import AddmmConfig, LinearConfig, MMConfig
    from executorch.backends.xnnpack.partition.config.xnnpack_config import ConfigPrecisionType
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.utils.utils import get_input_node, is_param_node

    class RuntimeWeights:
        """Mixin for a GEMM config: an fp32 layer whose weight is not a parameter keeps weight and bias as inputs."""

        def _runtime_weight(self, node, ep, precision) -> bool:
            weight = get_input_node(node, self.weight_idx)
            return precision == ConfigPrecisionType.FP32 and not is_param_node(ep, weight)

        def _get_weight_deps(self, node, ep, precision):
            return (True, []) if self._runtime_weight(node, ep, precision) else super()._get_weight_deps(
                node, ep, precision)

        def _get_bias_deps(self, node, ep, precision):
            return (True, []) if self._runtime_weight(node, ep, precision) else super()._get_bias_deps(
                node, ep, precision)

    swapped = {stock: type(f"RuntimeWeight{stock.__name__}", (RuntimeWeights, stock), {})
               for stock in (LinearConfig, AddmmConfig, MMConfig)}
    return XnnpackPartitioner(configs=[swapped.get(config, config) for config in ALL_PARTITIONER_CONFIGS])


class Int8Embedding(nn.Module):
    """An embedding table stored as int8 with one fp32 scale per row (ExecuTorch's embedding_byte kernel)."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        import executorch.exir.passes._quant_patterns_and_replacements  # noqa: F401  defines embedding_byte

        weight = embedding.weight.detach().float()
        scale = (weight.abs().amax(1) / 127.0).clamp(min=1e-12)
        self.register_buffer("qweight", torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scales", scale)
        self.padding_idx = embedding.padding_idx

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized table, for code that reads it directly rather than looking rows up."""
        return self.qweight.float() * self.scales[:, None]

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized_decomposed.embedding_byte.default(
            self.qweight, self.scales, None, -127, 127, indices.long())  # the kernel takes int64 indices


def _quantize_embeddings(program, min_elements: int) -> list[str]:
    """Swap every nn.Embedding of at least `min_elements` weights for an int8 one; returns their names."""
    swapped = []
    for parent_name, parent in list(program.named_modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Embedding) and worth_quantizing(child.weight.shape, min_elements):
                setattr(parent, name, Int8Embedding(child))
                swapped.append(f"{parent_name}.{name}".lstrip("."))
    return swapped


def _quantize_linears(exported, program, args, options: ExportOptions):
    """PT2E dynamic int8 on the nn.Linear modules of at least `min_quant_elements` weights that transform at most
    `max_int8_rows` rows per call; slot linears stay fp32. Returns (program, quantized names, names kept fp32).

    XNNPACK's dynamic int8 covers linear layers only: convolutions stay fp32 here (static int8 would need
    calibration data that an export does not have). It quantizes a layer's input at every call, which on a
    3,000-row 32x32 layer costs 3-4x the fp32 layer's time.
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    rows = linear_rows(program, args)
    large = [name for name, module in program.named_modules()
             if isinstance(module, nn.Linear) and not is_slot_module(module)
             and worth_quantizing(module.weight.shape, options.min_quant_elements)]
    names = [name for name in large if rows.get(name, 0) <= options.max_int8_rows]
    kept = [name for name in large if name not in names]
    if not names:
        return exported, [], kept
    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
    quantizer = XNNPACKQuantizer()
    for name in names:
        quantizer.set_module_name(name, config)
    prepared = prepare_pt2e(exported.module(), quantizer)
    prepared(*args)
    converted = convert_pt2e(prepared)
    return torch.export.export(converted, args, strict=False), names, kept


class ExecuTorchRunner(Runner):
    """executorch.runtime: Runtime.get().load_program(path).load_method('forward')."""

    def __init__(self, artifact: Artifact, model: DeviceModel, threads: int = 1):
        super().__init__(artifact, model)
        import executorch.kernels.quantized  # noqa: F401  registers embedding_byte and friends with the runtime
        from executorch.runtime import Runtime

        _set_threads(threads)
        self._method = Runtime.get().load_program(str(artifact.path)).load_method("forward")
        # Method.execute clones every output into a new tensor (10-15 µs a call, a third of the call floor); the
        # pybind method under it runs without that clone, and _run copies the one output out itself.
        self._call = getattr(getattr(self._method, "_method", None), "call", None)

    def signature(self) -> tuple[list, list]:
        """(shape, dtype code) of each input and output, as the program declares them."""
        meta = self._method.metadata
        found_in = [(tuple(meta.input_tensor_meta(i).sizes()), int(meta.input_tensor_meta(i).dtype()))
                    for i in range(meta.num_inputs())]
        found_out = [(tuple(meta.output_tensor_meta(i).sizes()), int(meta.output_tensor_meta(i).dtype()))
                     for i in range(meta.num_outputs())]
        return found_in, found_out

    def _run(self, args: list[np.ndarray]) -> np.ndarray:
        inputs = [torch.from_numpy(a) for a in args]  # the runtime copies them into its input buffers
        outputs = self._method.execute(inputs) if self._call is None else self._call(inputs, False)
        return outputs[0].numpy().copy()  # the runtime reuses its output buffer on the next call


def _set_threads(threads: int) -> None:
    from executorch.extension.pybindings import portable_lib

    reset = getattr(portable_lib, "_unsafe_reset_threadpool", None)
    if reset is not None:
        reset(threads)


def load(artifact: Artifact, model: DeviceModel, options: ExportOptions | None = None) -> ExecuTorchRunner:
    return ExecuTorchRunner(artifact, model, (options or ExportOptions()).threads)


def validate(artifact: Artifact, model: DeviceModel, slot_sets: Mapping[str, Mapping[str, np.ndarray]],
             options: ExportOptions) -> ParityReport:
    """Check the program's inputs and output against the specs, then parity with PyTorch on every slot set."""
    runner = load(artifact, model, options)
    found_in, found_out = runner.signature()
    specs = list(model.input_specs) + list(model.slot_specs)
    names = [s.name for s in specs] + [f"extra#{i}" for i in range(len(specs), len(found_in))]
    check_signature(NAME, "inputs", [(n, shape, code) for n, (shape, code) in zip(names, found_in)],
                    [(s.name, tuple(s.shape), ET_DTYPES[s.dtype]) for s in specs])
    out = model.output_spec
    check_signature(NAME, "outputs", [(out.name, shape, code) for shape, code in found_out],
                    [(out.name, tuple(out.shape), ET_DTYPES[out.dtype])])
    return check_parity(runner, model, slot_sets, options.compressed)
