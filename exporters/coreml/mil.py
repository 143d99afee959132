"""Numpy evaluator of a saved Core ML ML program (owned by exporters.coreml): Linux cannot run MLModel.predict.

It reads the package's MIL program back (coremltools' milproto loader, weights from weights/weight.bin) and runs
the ops our device models use with independent numpy implementations, optionally over a batch of calls that share
the slots: every runtime value then carries one extra leading axis and each op shifts its axes by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from toolkit.errors import DuetError

MIL_DTYPES = {"fp32": np.float32, "fp16": np.float16, "int32": np.int32, "int16": np.int16, "int8": np.int8,
              "uint8": np.uint8, "bool": np.bool_}


class UnsupportedMilOp(DuetError, NotImplementedError):
    """The program holds an op the numpy evaluator does not implement."""


@dataclass
class Val:
    """A runtime value: `array` has a leading batch axis when `batched`."""

    array: np.ndarray
    batched: bool

    @property
    def shape(self) -> tuple[int, ...]:  # the per-call (logical) shape
        return self.array.shape[1:] if self.batched else self.array.shape

    @property
    def rank(self) -> int:
        return len(self.shape)


def _const(v: Val | None, default: Any = None) -> Any:
    if v is None:
        return default
    if v.batched:
        raise UnsupportedMilOp("an op parameter that must be constant depends on the program inputs")
    return v.array


def _axes(axes: Any, rank: int) -> list[int]:
    return [int(a) % rank if rank else 0 for a in np.atleast_1d(axes)]


def _shift(v: Val, axes: Sequence[int]) -> list[int]:
    return [a + 1 for a in axes] if v.batched else list(axes)


def _expand(vals: Sequence[Val], rank: int | None = None) -> list[np.ndarray]:
    """Arrays ready for numpy broadcasting: batched ones get per-call ones inserted after the batch axis."""
    rank = max(v.rank for v in vals) if rank is None else rank
    out = []
    for v in vals:
        a = v.array
        if v.batched and v.rank < rank:
            a = a.reshape((a.shape[0],) + (1,) * (rank - v.rank) + v.shape)
        out.append(a)
    return out


def _elementwise(fn: Callable) -> Callable:
    def op(args: Mapping[str, Any]) -> Val:
        names = [n for n in ("cond", "x", "y", "a", "b") if args.get(n) is not None]
        vals = [args[n] for n in names]
        return Val(fn(*_expand(vals)), any(v.batched for v in vals))
    return op


def _unary(fn: Callable) -> Callable:
    return lambda args: Val(fn(args["x"].array), args["x"].batched)


def _linear(args) -> Val:
    x, weight, bias = args["x"], args["weight"], args.get("bias")
    if weight.batched or (bias is not None and bias.batched):
        raise UnsupportedMilOp("linear with per-call weights")
    a = x.array
    out = (a.reshape(-1, a.shape[-1]) @ weight.array.T).reshape(a.shape[:-1] + (weight.array.shape[0],))  # one GEMM
    return Val(out if bias is None else out + bias.array, x.batched)


def _matmul(args) -> Val:
    x, y = args["x"], args["y"]
    a, b = x.array, y.array
    if bool(_const(args.get("transpose_x"), False)):
        a = np.swapaxes(a, -1, -2)
    if bool(_const(args.get("transpose_y"), False)):
        b = np.swapaxes(b, -1, -2)
    if (x.batched and x.rank < 2) or (y.batched and y.rank < 2):
        raise UnsupportedMilOp("matmul of a rank-1 per-call tensor")
    if not y.batched and y.rank == 2 and a.ndim >= 2:  # a stack times one matrix: a single GEMM
        return Val((a.reshape(-1, a.shape[-1]) @ b).reshape(a.shape[:-1] + (b.shape[-1],)), x.batched)
    rank = max(x.rank, y.rank)
    a, b = _expand([Val(a, x.batched), Val(b, y.batched)], rank)
    return Val(np.matmul(a, b), x.batched or y.batched)


def _reshape(args) -> Val:
    x, shape = args["x"], [int(s) for s in _const(args["shape"])]
    shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    lead = (x.array.shape[0],) if x.batched else ()
    return Val(x.array.reshape(lead + tuple(shape)), x.batched)


def _expand_dims(args) -> Val:
    x = args["x"]
    axes = sorted(_axes(_const(args["axes"]), x.rank + len(np.atleast_1d(_const(args["axes"])))))
    return Val(np.expand_dims(x.array, tuple(_shift(x, axes))), x.batched)


def _squeeze(args) -> Val:
    x = args["x"]
    axes = _const(args.get("axes"))
    axes = [i for i, d in enumerate(x.shape) if d == 1] if axes is None else _axes(axes, x.rank)
    return Val(np.squeeze(x.array, tuple(_shift(x, axes))), x.batched)


def _transpose(args) -> Val:
    x, perm = args["x"], [int(p) for p in _axes(_const(args["perm"]), args["x"].rank)]
    return Val(np.transpose(x.array, [0] + [p + 1 for p in perm] if x.batched else perm), x.batched)


def _slice_by_index(args) -> Val:
    x = args["x"]
    rank = x.rank
    begin, end = _const(args["begin"]), _const(args["end"])
    stride = _const(args.get("stride"), np.ones(rank, np.int32))
    begin_mask = _const(args.get("begin_mask"), np.zeros(rank, bool))
    end_mask = _const(args.get("end_mask"), np.zeros(rank, bool))
    squeeze_mask = _const(args.get("squeeze_mask"), np.zeros(rank, bool))
    index: list = [slice(None)] if x.batched else []
    for i in range(rank):
        if squeeze_mask[i]:
            index.append(int(begin[i]))
        else:
            index.append(slice(None if begin_mask[i] else int(begin[i]), None if end_mask[i] else int(end[i]),
                               int(stride[i])))
    return Val(x.array[tuple(index)], x.batched)


def _slice_by_size(args) -> Val:
    x = args["x"]
    begin, size = _const(args["begin"]), _const(args["size"])
    index: list = [slice(None)] if x.batched else []
    for b, s in zip(begin, size):
        index.append(slice(int(b), None if int(s) == -1 else int(b) + int(s)))
    return Val(x.array[tuple(index)], x.batched)


def _gather(args) -> Val:
    x, indices = args["x"], args["indices"]
    if int(_const(args.get("batch_dims"), 0)) != 0:
        raise UnsupportedMilOp("gather with batch_dims")
    axis = _axes(_const(args.get("axis"), 0), x.rank)[0]
    idx = indices.array.astype(np.intp)
    if not x.batched and not indices.batched:
        return Val(np.take(x.array, idx, axis=axis), False)
    if not x.batched:  # the usual case: a constant table, per-call indices
        return Val(np.moveaxis(np.take(x.array, idx, axis=axis), axis, 0), True)
    if not indices.batched:
        return Val(np.take(x.array, idx, axis=axis + 1), True)
    return Val(np.stack([np.take(xa, ia, axis=axis) for xa, ia in zip(x.array, idx)]), True)


def _conv(args) -> Val:
    """N-d convolution over (n, C, *spatial) inputs with a constant (C_out, C_in / groups, *kernel) weight."""
    x, weight = args["x"], _const(args["weight"])
    spatial = weight.ndim - 2
    strides = [int(v) for v in _const(args.get("strides"), [1] * spatial)]
    dilations = [int(v) for v in _const(args.get("dilations"), [1] * spatial)]
    groups = int(_const(args.get("groups"), 1))
    pad_type = str(_const(args.get("pad_type"), "valid"))
    lead = x.array.shape[: x.array.ndim - spatial - 1]
    a = x.array.reshape((-1,) + x.array.shape[x.array.ndim - spatial - 1 :])
    extents = [(k - 1) * d + 1 for k, d in zip(weight.shape[2:], dilations)]
    if pad_type == "custom":
        pads = [tuple(int(p) for p in pair) for pair in np.asarray(_const(args["pad"])).reshape(spatial, 2)]
    elif pad_type in ("same", "same_lower"):
        pads = []
        for size, stride, extent in zip(a.shape[2:], strides, extents):
            total = max((-(-size // stride) - 1) * stride + extent - size, 0)
            small = total // 2
            pads.append((total - small, small) if pad_type == "same_lower" else (small, total - small))
    elif pad_type == "valid":
        pads = [(0, 0)] * spatial
    else:
        raise UnsupportedMilOp(f"conv with pad_type {pad_type!r}")
    a = np.pad(a, [(0, 0), (0, 0)] + pads)
    windows = np.lib.stride_tricks.sliding_window_view(a, extents, axis=tuple(range(2, 2 + spatial)))
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) + tuple(
        slice(None, None, d) for d in dilations)
    windows = windows[index]  # (B, C_in, *out, *kernel)
    per_group_in, per_group_out = a.shape[1] // groups, weight.shape[0] // groups
    kernel_axes = list(range(2 + spatial, 2 + 2 * spatial))
    parts = []
    for g in range(groups):
        part = np.tensordot(windows[:, g * per_group_in : (g + 1) * per_group_in],
                            weight[g * per_group_out : (g + 1) * per_group_out],
                            axes=([1] + kernel_axes, [1] + list(range(2, 2 + spatial))))  # (B, *out, C_out_g)
        parts.append(np.moveaxis(part, -1, 1))
    out = np.concatenate(parts, axis=1) if groups > 1 else parts[0]
    bias = _const(args.get("bias"))
    if bias is not None:
        out = out + bias.reshape((-1,) + (1,) * spatial)
    return Val(out.astype(x.array.dtype, copy=False).reshape(lead + out.shape[1:]), x.batched)


def _layer_norm(args) -> Val:
    x, eps = args["x"], float(_const(args.get("epsilon"), 1e-5))
    axes = tuple(_shift(x, _axes(_const(args["axes"]), x.rank)))
    mean = x.array.mean(axis=axes, keepdims=True)
    centred = x.array - mean
    out = centred / np.sqrt((centred * centred).mean(axis=axes, keepdims=True) + np.float32(eps))
    if args.get("gamma") is not None:
        out = out * _const(args["gamma"])
    if args.get("beta") is not None:
        out = out + _const(args["beta"])
    return Val(out.astype(x.array.dtype, copy=False), x.batched)


def _softmax(args) -> Val:
    x = args["x"]
    axis = _shift(x, _axes(_const(args.get("axis"), -1), x.rank))[0]
    shifted = x.array - x.array.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return Val(e / e.sum(axis=axis, keepdims=True), x.batched)


def _reduce(fn: Callable) -> Callable:
    def op(args) -> Val:
        x = args["x"]
        axes = _const(args.get("axes"))
        axes = list(range(x.rank)) if axes is None else _axes(axes, x.rank)
        keep = bool(_const(args.get("keep_dims"), False))
        return Val(fn(x.array, axis=tuple(_shift(x, axes)), keepdims=keep), x.batched)
    return op


def _tile(args) -> Val:
    x, reps = args["x"], [int(r) for r in _const(args["reps"])]
    return Val(np.tile(x.array, [1] + reps if x.batched else reps), x.batched)


def _concat(args) -> Val:
    values = list(args["values"])
    if bool(_const(args.get("interleave"), False)):
        raise UnsupportedMilOp("concat with interleave")
    rank = values[0].rank
    axis = _axes(_const(args["axis"]), rank)[0]
    if any(v.batched for v in values):
        n = next(v.array.shape[0] for v in values if v.batched)
        arrays = [v.array if v.batched else np.broadcast_to(v.array, (n,) + v.array.shape) for v in values]
        return Val(np.concatenate(arrays, axis=axis + 1), True)
    return Val(np.concatenate([v.array for v in values], axis=axis), False)


def _split(args) -> list[Val]:
    x = args["x"]
    axis = _axes(_const(args["axis"]), x.rank)[0]
    sizes = _const(args.get("split_sizes"))
    if sizes is None:
        n = int(_const(args["num_splits"]))
        sizes = [x.shape[axis] // n] * n
    cuts = np.cumsum([int(s) for s in sizes])[:-1]
    return [Val(part, x.batched) for part in np.split(x.array, cuts, axis=axis + 1 if x.batched else axis)]


def _fill_like(args) -> Val:
    value = np.asarray(_const(args.get("value"), 0.0))
    return Val(np.full(args["ref_tensor"].shape, value, dtype=value.dtype), False)


def _cast(args) -> Val:
    x, dtype = args["x"], MIL_DTYPES[str(_const(args["dtype"]))]
    return Val(x.array.astype(dtype), x.batched)


OPS: dict[str, Callable[[Mapping[str, Any]], Val | list[Val]]] = {
    "add": _elementwise(np.add), "sub": _elementwise(np.subtract), "mul": _elementwise(np.multiply),
    "real_div": _elementwise(np.divide), "maximum": _elementwise(np.maximum), "minimum": _elementwise(np.minimum),
    "pow": _elementwise(np.power), "greater": _elementwise(np.greater),
    "greater_equal": _elementwise(np.greater_equal), "less": _elementwise(np.less),
    "less_equal": _elementwise(np.less_equal), "equal": _elementwise(np.equal), "not_equal": _elementwise(np.not_equal),
    "logical_and": _elementwise(np.logical_and), "logical_or": _elementwise(np.logical_or),
    "select": _elementwise(np.where),
    "relu": _unary(lambda a: np.maximum(a, 0).astype(a.dtype, copy=False)),
    "sigmoid": _unary(lambda a: (1 / (1 + np.exp(-a))).astype(a.dtype, copy=False)),
    "tanh": _unary(np.tanh), "exp": _unary(np.exp), "sqrt": _unary(np.sqrt), "abs": _unary(np.abs),
    "rsqrt": _unary(lambda a: 1 / np.sqrt(a)), "logical_not": _unary(np.logical_not),
    "linear": _linear, "matmul": _matmul, "reshape": _reshape, "expand_dims": _expand_dims, "squeeze": _squeeze,
    "transpose": _transpose, "slice_by_index": _slice_by_index, "slice_by_size": _slice_by_size, "gather": _gather,
    "layer_norm": _layer_norm, "conv": _conv, "softmax": _softmax, "reduce_sum": _reduce(np.sum), "reduce_mean": _reduce(np.mean),
    "reduce_max": _reduce(np.max), "tile": _tile, "concat": _concat, "split": _split, "fill_like": _fill_like,
    "cast": _cast, "identity": _unary(lambda a: a),
}


def _affine_dequantize(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    data = inputs["quantized_data"]
    axis = int(inputs["axis"]) % data.ndim
    scale, zero = np.asarray(inputs["scale"]), np.asarray(inputs["zero_point"])
    scale = scale.reshape([-1 if i == axis else 1 for i in range(data.ndim)]) if scale.ndim else scale
    zero = zero.reshape([-1 if i == axis else 1 for i in range(data.ndim)]) if zero.ndim else zero
    return ((data.astype(np.float32) - zero.astype(np.float32)) * scale).astype(scale.dtype)


def _lut_to_dense(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    lut, packed, shape = inputs["lut"], inputs["indices"], [int(s) for s in inputs["shape"]]
    nbits = int(np.log2(lut.size))
    count = int(np.prod(shape))
    bits = np.unpackbits(packed.astype(np.uint8), bitorder="little")[: count * nbits].reshape(count, nbits)
    indices = (bits.astype(np.int64) << np.arange(nbits)).sum(axis=1)  # LSB first, one index after another
    return lut[indices].reshape(shape)


CONSTEXPR_OPS: dict[str, Callable[[Mapping[str, np.ndarray]], np.ndarray]] = {
    "constexpr_affine_dequantize": _affine_dequantize,
    "constexpr_lut_to_dense": _lut_to_dense,
}


class MilProgram:
    """The `main` function of an ML program as a list of numpy steps; constants are materialised once."""

    def __init__(self, function):
        self.input_names = list(function.inputs)
        self.input_types = {name: var for name, var in function.inputs.items()}
        self.output_names = [v.name for v in function.outputs]
        self.constants: dict[str, np.ndarray] = {}
        self.steps: list[tuple[str, Callable, dict[str, Any], list[str]]] = []
        self.largest_value = 1  # elements of the largest per-call intermediate (sizes the batches of calls)
        for op in function.operations:
            if op.op_type == "const":
                self.constants[op.outputs[0].name] = np.asarray(op.outputs[0].val)
            elif op.op_type in CONSTEXPR_OPS:
                values = {k: self.constants[v.name] for k, v in op.inputs.items()}
                self.constants[op.outputs[0].name] = CONSTEXPR_OPS[op.op_type](values)
            elif op.op_type in OPS:
                wiring = {k: (tuple(x.name for x in v) if isinstance(v, (list, tuple)) else v.name)
                          for k, v in op.inputs.items()}
                self.steps.append((op.op_type, OPS[op.op_type], wiring, [o.name for o in op.outputs]))
                for out in op.outputs:
                    shape = getattr(out, "shape", None) or ()
                    if all(isinstance(d, (int, np.integer)) for d in shape):
                        self.largest_value = max(self.largest_value, int(np.prod(shape, dtype=np.int64)))
            else:
                raise UnsupportedMilOp(f"the numpy evaluator has no implementation of MIL op {op.op_type!r} "
                                       f"(implemented: {', '.join(sorted(OPS) + sorted(CONSTEXPR_OPS))})")

    @classmethod
    def from_package(cls, path: Path) -> "MilProgram":
        """Read a saved .mlpackage's program, weights included, without the Core ML runtime."""
        import coremltools as ct
        from coremltools.converters.mil.frontend.milproto.load import load

        model = ct.models.MLModel(str(path), skip_model_load=True)
        spec = model.get_spec()
        program = load(spec, spec.specificationVersion, model.weights_dir)
        return cls(program.functions["main"])

    def op_types(self) -> set[str]:
        return {step[0] for step in self.steps}

    def run(self, inputs: Mapping[str, np.ndarray], batched: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Evaluate the program. Inputs named in `batched` carry a leading axis of calls; outputs then do too."""
        env: dict[str, Val] = {k: Val(v, False) for k, v in self.constants.items()}
        batch = None
        for name in self.input_names:
            if name not in inputs:
                raise KeyError(f"missing program input {name!r}")
            env[name] = Val(np.asarray(inputs[name]), name in batched)
            if name in batched:
                batch = env[name].array.shape[0]
        for op_type, fn, wiring, outputs in self.steps:
            args = {k: (tuple(env[x] for x in v) if isinstance(v, tuple) else env[v]) for k, v in wiring.items()}
            result = fn(args)
            for name, val in zip(outputs, result if isinstance(result, list) else [result]):
                env[name] = val
        results = {}
        for name in self.output_names:
            val = env[name]
            if batch is not None and not val.batched:
                results[name] = np.broadcast_to(val.array, (batch,) + val.array.shape).copy()
            else:
                results[name] = val.array
        return results
