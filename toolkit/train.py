"""Task-agnostic training: Base (shared slots), then DUET (generator + shared static layers), early-stopped alike."""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from toolkit.errors import TrainingDiverged
from toolkit.config import GeneratorConfig, TrainConfig
from toolkit.generator import ParameterGenerator
from toolkit.tasks.base import Task


class TrainLog:
    """Appends one JSON object per event to train_log.jsonl and forwards it to a listener (the CLI)."""

    def __init__(self, path: Path | None, listener: Callable[[dict], None] | None = None):
        self.path, self.listener = path, listener

    def __call__(self, **event) -> None:
        event = {"time": round(time.time(), 3), **event}
        if self.path:
            with self.path.open("a") as handle:
                handle.write(json.dumps(event) + "\n")
        if self.listener:
            self.listener(event)


def fit_stage(stage: str, task: Task, model: nn.Module, generator: nn.Module | None,
              optimizer: torch.optim.Optimizer, cfg: TrainConfig, log: TrainLog,
              progress: Callable[[str, int], Callable[[], None]] | None = None) -> float:
    """Train until the validation metric stops improving; leave the best weights in place; return its value."""
    rng = np.random.default_rng([cfg.seed, zlib.crc32(stage.encode())])
    modules = [m for m in (model, generator) if m is not None]
    best_score, best_state, stale = -np.inf, None, 0
    initial = task.evaluate(model, "val", generator)[task.selection_metric]
    log(stage=stage, epoch=0, **{f"val_{task.selection_metric}": initial})
    best_score, best_state = initial, [copy.deepcopy(m.state_dict()) for m in modules]
    for epoch in range(1, cfg.max_epochs + 1):
        for m in modules:
            m.train()
        batches = list(task.train_batches(rng, cfg.batch_size))
        advance = progress(f"{stage} epoch {epoch}", len(batches)) if progress else None
        started, total = time.perf_counter(), 0.0
        for step, batch in enumerate(batches):
            loss = task.batch_loss(model, batch, generator)
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingDiverged(f"{stage} stage, epoch {epoch}, step {step}: the training loss is {value}; "
                                       f"lower the learning rate or check the data")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += value
            if advance:
                advance()
        score = task.evaluate(model, "val", generator)[task.selection_metric]
        log(stage=stage, epoch=epoch, train_loss=total / max(len(batches), 1),
            seconds=round(time.perf_counter() - started, 2), **{f"val_{task.selection_metric}": score})
        if score > best_score:
            best_score, best_state, stale = score, [copy.deepcopy(m.state_dict()) for m in modules], 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    for m, state in zip(modules, best_state):
        m.load_state_dict(state)
    log(stage=stage, event="best", **{f"val_{task.selection_metric}": best_score})
    return best_score


def train_base(task: Task, cfg: TrainConfig, log: TrainLog, progress=None) -> nn.Module:
    """Base: static layers and one shared slot head, trained on the cloud's data."""
    torch.manual_seed(cfg.seed)
    model = task.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    fit_stage("base", task, model, None, optimizer, cfg, log, progress)
    return model


def build_generator(model: nn.Module, gen_cfg: GeneratorConfig) -> ParameterGenerator:
    return ParameterGenerator(gen_cfg, model.slot_specs)


def train_duet(task: Task, base: nn.Module, gen_cfg: GeneratorConfig, cfg: TrainConfig, log: TrainLog,
               progress=None) -> tuple[nn.Module, ParameterGenerator]:
    """DUET: start from Base (the warm-up), then train the generator with the shared static layers."""
    torch.manual_seed(cfg.seed + 1)
    model = copy.deepcopy(base)
    generator = build_generator(model, gen_cfg)
    groups = [{"params": generator.parameters(), "lr": cfg.generator_lr}]
    if cfg.backbone_lr > 0:
        groups.append({"params": model.parameters(), "lr": cfg.backbone_lr})
    else:
        model.requires_grad_(False)
    fit_stage("duet", task, model, generator, torch.optim.Adam(groups), cfg, log, progress)
    model.requires_grad_(True)
    return model, generator


def train_run(out: Path, task: Task, train_cfg: TrainConfig, generator_options: dict[str, Any],
              base_from: Path | None = None, listener: Callable[[dict], None] | None = None,
              progress=None) -> Path:
    """Train Base (or take `base_from`'s) and the DUET stage, then write the run directory `out`: config.json, the
    weights and train_log.jsonl (each event also goes to `listener`). Nothing is written before the inputs check."""
    from toolkit.runs import LOG_FILE, check_new_run_dir, load_base, run_config, save_run

    out = Path(out)
    check_new_run_dir(out)
    gen_cfg = GeneratorConfig.for_task(task, task.build_model().context_dim, **generator_options)
    base = load_base(Path(base_from), task) if base_from else None
    existed = out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        log = TrainLog(out / LOG_FILE, listener)
        log(event="start", task=task.name, config=task.config_json(), seed=train_cfg.seed)
        if base is None:
            base = train_base(task, train_cfg, log, progress)
        else:
            log(event="base_from", run=str(base_from))
        duet, generator = train_duet(task, base, gen_cfg, train_cfg, log, progress)
        save_run(out, run_config(task, gen_cfg, train_cfg), base, duet, generator)
    except BaseException:  # no half run is left behind (the directory was absent or empty before)
        shutil.rmtree(out, ignore_errors=True)
        if existed:
            out.mkdir()
        raise
    return out
