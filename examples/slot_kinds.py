"""What each kind of slot costs in each runtime, measured: examples/digits_devices.py's DigitNet with its slots on the
classifier only (linear), on the LayerNorm only, on the second convolution only, and on all three; each exported to
ExecuTorch and LiteRT (fp32) by the toolkit's own exporters, timed against eager PyTorch in the same process, and for
ExecuTorch, which operators stay outside the XNNPACK delegate.

    python examples/slot_kinds.py --out docs/measurements/slot-kinds.json

(Core ML converts every slot kind, each checked by parity with the numpy evaluator of the saved program, but Linux
has no Core ML runtime to time it.)
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from collections import Counter
from pathlib import Path

import torch

import toolkit as duet
from digits_devices import DigitNet

VARIANTS = {"linear": ["classifier"], "layernorm": ["norm"], "conv2d": ["mix"], "all three": ["mix", "norm", "classifier"]}


def outside_xnnpack(model: torch.nn.Module, inputs: list[duet.ExampleInput]) -> dict[str, int]:
    """Operators of the ExecuTorch program the XNNPACK delegate does not take, by name (the exporter's partitioner)."""
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower

    from exporters.executorch import partitioner
    from toolkit.exporting.contract import example_args
    from toolkit.exporting.program import DeviceProgram

    program = DeviceProgram.from_specs(model, inputs)
    exported = torch.export.export(program.for_export(), example_args(program), strict=False)
    lowered = to_edge_transform_and_lower(exported, partitioner=[partitioner()])
    info = get_delegation_info(lowered.exported_program().graph_module)
    counts = Counter()
    for name, row in info.delegation_by_operator.items():
        if row.non_delegated > 0 and not name.startswith(("getitem", "alloc")):
            counts[name] += row.non_delegated
    return dict(counts)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/measurements/slot-kinds.json", help="JSON file to write")
    parser.add_argument("--calls", type=int, default=500, help="timed calls per program")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    inputs = [duet.ExampleInput(duet.TensorSpec("images", (16, 1, 8, 8), "float32"))]
    options = duet.ExportOptions(quantize="none", latency_calls=args.calls)
    rows = {}
    for kind, modules in VARIANTS.items():
        torch.manual_seed(0)
        model = duet.personalize(DigitNet(16), duet.SlotConfig(modules))
        with tempfile.TemporaryDirectory() as folder:
            report = duet.export_model(model, inputs, Path(folder) / "export", ["executorch", "tflite"], options)
        rows[kind] = {
            "slots": [s.name for s in duet.slot_specs(model)],
            **{target: {"p50_us": round(r["latency"]["runtime_p50_us"], 1),
                        "eager_p50_us": round(r["latency"]["pytorch_eager_p50_us"], 1),
                        "ratio_to_eager": round(r["latency"]["runtime_p50_us"] / r["latency"]["pytorch_eager_p50_us"], 2)}
               for target, r in report["targets"].items()},
            "executorch_ops_outside_xnnpack": outside_xnnpack(model, inputs)}
        print(kind, json.dumps(rows[kind]))
    result = {"command": "python examples/slot_kinds.py", "threads": 1, "machine": platform.machine(),
              "inputs": "16 images of 1x8x8 per call, fp32 programs", "variants": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
