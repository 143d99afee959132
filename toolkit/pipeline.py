"""The pipeline as functions, for code that uses the toolkit as a library (the CLI's commands call the same ones):
train a task's run, evaluate it, export it or a bare personalised model, and load a run back."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from torch import nn

from toolkit.config import FinetuneConfig, GeneratorConfig, TrainConfig
from toolkit.exporting.contract import ExportOptions
from toolkit.exporting.program import ExampleInput
from toolkit.exporting.targets import target_names
from toolkit.tasks.base import Task
from toolkit.training.runs import Run

Progress = Callable[[str, int | None], Callable[[], None]]  # (description, total) -> advance()


def train(task: Task, out: str | Path, config: TrainConfig | None = None,
          generator: Mapping[str, Any] | None = None, base_from: str | Path | None = None,
          listener: Callable[[dict], None] | None = None, progress: Progress | None = None) -> Path:
    """Train Base and the DUET generator of `task` and write the run directory `out` (config.json, base.safetensors,
    duet.safetensors, train_log.jsonl). `config`: TrainConfig (None: the task's defaults); `generator`:
    GeneratorConfig fields to override (e.g. {"rank": 8}); `base_from`: reuse an earlier run's Base."""
    from toolkit.training.train import train_run

    config = config or TrainConfig.for_task(task)
    return train_run(Path(out), task, config, dict(generator or {}), Path(base_from) if base_from else None,
                     listener, progress)


def load_run(path: str | Path, cache_dir: str | Path | None = None) -> Run:
    """A run directory rebuilt: its task, Base, the DUET model and its generator."""
    from toolkit.training.runs import load_run as load

    return load(Path(path), Path(cache_dir) if cache_dir else None)


def evaluate(run: str | Path | Run, finetune: FinetuneConfig | None = None, shifted_fraction: float = 0.25,
             progress: Progress | None = None, write: bool = True) -> dict[str, dict]:
    """Score Base, per-device fine-tuning and DUET on every test device. Returns {"metrics", "shifted",
    "settings"}; with `write`, also writes them into the run directory (metrics.json, ...)."""
    from toolkit.evaluation.evaluate import evaluate_run, write_evaluation

    run = run if isinstance(run, Run) else load_run(run)
    result = evaluate_run(run, finetune or FinetuneConfig(), shifted_fraction, progress)
    if write:
        write_evaluation(run.path, result)
    return result


def export(run: str | Path | Run, out: str | Path, targets: Sequence[str] | None = None,
           options: ExportOptions | None = None, progress: Progress | None = None) -> dict:
    """Export a run's personalised model with its slots as program inputs to every target (default: all registered)
    and validate each in its runtime; writes model files, manifest.json and report.json into `out`."""
    from toolkit.exporting.transaction import export_run

    run = run if isinstance(run, Run) else load_run(run)
    return export_run(run, list(targets or target_names()), options or ExportOptions(), Path(out), progress)


def export_model(model: nn.Module, inputs: Sequence[ExampleInput], out: str | Path,
                 targets: Sequence[str] | None = None, options: ExportOptions | None = None, name: str = "model",
                 progress: Progress | None = None) -> dict:
    """Export a personalised model the toolkit never trained, Base's slots being its own parameters (no generator
    serves it: its manifest has no `generate` section)."""
    from toolkit.exporting.transaction import export_model as export_bare

    return export_bare(model, inputs, list(targets or target_names()), options or ExportOptions(), Path(out), name,
                       progress)
