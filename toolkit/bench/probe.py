"""One program measured in a fresh process (`python -m toolkit.bench.probe SPEC`): load, latency, PSS, slot swap.

The parent (toolkit.bench.host) writes the spec, the call's inputs (inputs.npz), the slots bound for the timed
calls (slots.npz) and a slot blob to swap in (swap.safetensors); this process loads one program — eager PyTorch from
the run, or an exported file in its runtime — and writes what it measured as JSON. A fresh process per program keeps
one runtime's memory and threads out of another's numbers.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

SWAP_REPEATS, SWAP_WARMUP = 5, 1  # slot swap: p50 of 5 after 1 untimed, the apps' rule (docs/formats.md)


@dataclass(frozen=True)
class ProbeSpec:
    """What one probe process measures."""

    program: str  # "pytorch" (eager, from the run) or a manifest target name
    export_dir: str  # the export whose manifest (and, for a target, program file) is used
    run_dir: str  # the run (eager PyTorch loads its DUET model)
    work_dir: str  # inputs.npz, slots.npz, swap.safetensors; the result is written here
    cache_dir: str  # preprocessed-data cache (the eager model's task is rebuilt from it)
    calls: int  # timed calls
    warmup: int  # untimed calls before them
    threads: int  # CPU threads of the runtime and of PyTorch

    @property
    def result_file(self) -> Path:
        return Path(self.work_dir) / f"result-{self.program}.json"


def pss_mb() -> float:
    """This process's proportional set size in MB (Linux), NaN where /proc does not say."""
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return math.nan


def _timed_ms(fn: Callable[[], Any]) -> float:
    started = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - started) / 1e6


Loaded = tuple[Callable, list, int]  # forward(arguments), the slot specs in call order, bytes loaded


def _arguments(inputs: list[np.ndarray], slots: dict[str, np.ndarray], specs: list) -> list[np.ndarray]:
    """A program call's arguments: the inputs, then the slots in the program's order as fp32."""
    return inputs + [np.ascontiguousarray(slots[s.name], dtype=np.float32) for s in specs]


def _eager(spec: ProbeSpec, manifest: dict) -> Callable[[], Loaded]:
    """Eager PyTorch, prepared (task and data rebuilt); loading = build the DUET model, read duet.safetensors, load
    the weights, make the device program at the export's shapes."""
    import torch
    from safetensors.torch import load_file

    from toolkit.client import ManifestModel
    from toolkit.exporting.program import DeviceProgram
    from toolkit.tasks.loading import task_class
    from toolkit.training.runs import DUET_WEIGHTS, MODEL_PREFIX, read_config, without_prefix

    config = read_config(Path(spec.run_dir))
    task = task_class(config["task"], config.get("task_path")).from_config_json(config["task_config"],
                                                                           Path(spec.cache_dir))
    described = ManifestModel.of(manifest)  # the export's inputs and output: the program eager PyTorch runs
    weights = Path(spec.run_dir) / DUET_WEIGHTS

    def load() -> Loaded:
        model = task.build_model()
        model.load_state_dict(without_prefix(load_file(str(weights)), MODEL_PREFIX))
        program = DeviceProgram(model.eval(), described.input_specs, described.output_spec, []).eval()

        def forward(arrays: list[np.ndarray]):
            with torch.no_grad():
                return program(*(torch.from_numpy(a) for a in arrays))

        return forward, program.slot_specs, weights.stat().st_size

    return load


def _runtime(spec: ProbeSpec, manifest: dict) -> Callable[[], Loaded]:
    """A manifest target, its runtime imported; loading = the client's load_program (file -> runner ready)."""
    import importlib

    from toolkit.exporting.targets import exporter
    from toolkit.artifacts import served_digest
    from toolkit.client import load_program
    from toolkit.protocol.manifest import slot_specs_of

    for module in getattr(exporter(spec.program), "RUNTIME_MODULES", ()):
        importlib.import_module(module)
    path = Path(spec.export_dir) / manifest["targets"][spec.program]["file"]

    def load() -> Loaded:
        runner = load_program(manifest, spec.program, path, spec.threads)
        return runner.call_checked, slot_specs_of(manifest), served_digest(path)[0]

    return load


def measure(spec: ProbeSpec) -> dict[str, Any]:
    import torch

    from toolkit.client import SlotAnswer, check_answer
    from toolkit.protocol.manifest import load_manifest
    from toolkit.protocol.slots import sha256_hex

    torch.set_num_threads(spec.threads)
    work = Path(spec.work_dir)
    manifest = load_manifest(Path(spec.export_dir))
    with np.load(work / "inputs.npz", allow_pickle=False) as saved:
        inputs = [np.ascontiguousarray(saved[f"input_{i}"]) for i in range(len(saved.files))]
    with np.load(work / "slots.npz", allow_pickle=False) as saved:
        slots = {name: saved[name] for name in saved.files}
    blob = (work / "swap.safetensors").read_bytes()
    load = (_eager if spec.program == "pytorch" else _runtime)(spec, manifest)
    before_load = pss_mb()
    started = time.perf_counter()
    forward, specs, size = load()
    load_ms = (time.perf_counter() - started) * 1e3
    pss = [before_load, pss_mb()]
    args = _arguments(inputs, slots, specs)
    for _ in range(spec.warmup):
        forward(args)
    samples = [_timed_ms(lambda: forward(args)) for _ in range(spec.calls)]
    after_calls = pss_mb()
    pss.append(after_calls)
    answer = SlotAnswer(blob, sha256_hex(blob), manifest["model_version"])

    def swap() -> None:  # answer bytes in memory -> decoded, checked -> arguments -> first forward with them
        forward(_arguments(inputs, check_answer(answer, manifest), specs))

    swaps = [_timed_ms(swap) for _ in range(SWAP_WARMUP + SWAP_REPEATS)][SWAP_WARMUP:]
    pss.append(pss_mb())
    return {"program": spec.program, "samples_ms": samples, "load_ms": load_ms, "bytes": size,
            "swap_ms": float(np.median(swaps)), "pss_before_load_mb": before_load,
            "pss_after_calls_mb": after_calls, "pss_peak_mb": max(pss), "quantization": manifest["quantization"]["mode"] if spec.program != "pytorch"
            else "none"}


def main(argv: list[str]) -> int:
    spec = ProbeSpec(**json.loads(Path(argv[0]).read_text()))
    result = measure(spec)
    spec.result_file.write_text(json.dumps(result))
    return 0


def write_spec(spec: ProbeSpec) -> Path:
    path = Path(spec.work_dir) / f"spec-{spec.program}.json"
    path.write_text(json.dumps(asdict(spec)))
    return path


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
