"""Task-agnostic training: Base (shared slots), then DUET (generator + shared static layers), early-stopped alike."""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from toolkit.errors import ConfigError, TrainingDiverged
from toolkit.config import GeneratorConfig, TrainConfig
from toolkit.training.distributed import (SINGLE, World, barrier, broadcast_modules, from_main, process_group, sum_gradients,
                                 torch_device, world_from_env)
from toolkit.model.generator import ParameterGenerator
from toolkit.model.slots import slot_specs
from toolkit.tasks.base import Task
from toolkit.training.steps import batch_loss, context_dim, evaluate_split


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


def train_step(task: Task, model: nn.Module, generator: nn.Module | None, batch: Any,
               optimizer: torch.optim.Optimizer, world: World = SINGLE) -> float:
    """Backpropagate one global batch's mean loss (this process's rows of it) and return it; the gradients of the
    optimizer's parameters are then the batch's, summed over the processes. The caller steps the optimizer."""
    optimizer.zero_grad()
    if world.size == 1:
        loss = batch_loss(task, model, batch, generator)
        loss.backward()
        return loss.item()
    rows = batch.rows
    start, stop = world.shard(rows)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    loss = torch.zeros((), device=params[0].device)
    if stop > start:  # this rank's mean loss weighted by its share of the rows: the ranks' losses sum to the batch's
        loss = batch_loss(task, model, batch.slice(start, stop), generator) * ((stop - start) / rows)
        loss.backward()
    return sum_gradients(params, loss.detach(), world)


def fit_stage(stage: str, task: Task, model: nn.Module, generator: nn.Module | None,
              optimizer: torch.optim.Optimizer, cfg: TrainConfig, log: TrainLog,
              progress: Callable[[str, int], Callable[[], None]] | None = None, world: World = SINGLE) -> float:
    """Train until the validation metric stops improving; leave the best weights in place; return its value.

    Under torchrun every process draws the same global batches and trains on its rows of each; rank 0 validates
    and its score decides early stopping on every rank, so all of them stop together with the same weights."""
    rng = np.random.default_rng([cfg.seed, zlib.crc32(stage.encode())])
    modules = [m for m in (model, generator) if m is not None]
    device = next(model.parameters()).device
    broadcast_modules(modules, world)
    if world.rank > 0:  # each rank its own dropout masks, not the same positions of other rows (rank 0 keeps the
        # stream of a single process)
        torch.manual_seed(int(np.random.SeedSequence([cfg.seed, zlib.crc32(stage.encode()), world.rank])
                              .generate_state(1)[0]))

    def validation() -> float:
        score = evaluate_split(task, model, "val", generator)[task.selection_metric] if world.is_main else 0.0
        return from_main(score, world, device)

    best_score, best_state, stale = -np.inf, None, 0
    initial = validation()
    log(stage=stage, epoch=0, **{f"val_{task.selection_metric}": initial})
    best_score, best_state = initial, [copy.deepcopy(m.state_dict()) for m in modules]
    for epoch in range(1, cfg.max_epochs + 1):
        for m in modules:
            m.train()
        # batches are drawn as training goes (an epoch's are never all in memory); the progress bar has no total
        advance = progress(f"{stage} epoch {epoch}", None) if progress else None
        started, total, steps = time.perf_counter(), 0.0, 0
        for step, batch in enumerate(task.batches("train", rng=rng, batch_size=cfg.batch_size)):
            value = train_step(task, model, generator, batch, optimizer, world)
            if not math.isfinite(value):  # the batch's loss: every rank raises alike
                raise TrainingDiverged(f"{stage} stage, epoch {epoch}, step {step}: the training loss is {value}; "
                                       f"lower the learning rate or check the data")
            optimizer.step()
            total, steps = total + value, steps + 1
            if advance:
                advance()
        if not steps:  # a stage that takes no step would be written as if it had trained
            raise ConfigError(f"{stage} stage, epoch {epoch}: the training data gives no batch of {cfg.batch_size} "
                              f"samples; nothing was trained or written")
        score = validation()
        log(stage=stage, epoch=epoch, train_loss=total / max(steps, 1),
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


def train_base(task: Task, cfg: TrainConfig, log: TrainLog, progress=None, world: World = SINGLE,
               device: torch.device | str = "cpu") -> nn.Module:
    """Base: static layers and one shared slot head, trained on the cloud's data."""
    torch.manual_seed(cfg.seed)
    model = task.build_model().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    fit_stage("base", task, model, None, optimizer, cfg, log, progress, world)
    return model


def build_generator(model: nn.Module, gen_cfg: GeneratorConfig) -> ParameterGenerator:
    return ParameterGenerator(gen_cfg, slot_specs(model))


def train_duet(task: Task, base: nn.Module, gen_cfg: GeneratorConfig, cfg: TrainConfig, log: TrainLog,
               progress=None, world: World = SINGLE) -> tuple[nn.Module, ParameterGenerator]:
    """DUET: start from Base (the warm-up), then train the generator with the shared static layers (on Base's
    torch device)."""
    torch.manual_seed(cfg.seed + 1)
    model = copy.deepcopy(base)
    generator = build_generator(model, gen_cfg).to(next(base.parameters()).device)
    groups = [{"params": generator.parameters(), "lr": cfg.generator_lr}]
    if cfg.backbone_lr > 0:
        groups.append({"params": model.parameters(), "lr": cfg.backbone_lr})
    else:
        model.requires_grad_(False)
    fit_stage("duet", task, model, generator, torch.optim.Adam(groups), cfg, log, progress, world)
    model.requires_grad_(True)
    return model, generator


def train_run(out: Path, task: Task, train_cfg: TrainConfig, generator_options: dict[str, Any],
              base_from: Path | None = None, listener: Callable[[dict], None] | None = None,
              progress=None) -> Path:
    """Train Base (or take `base_from`'s) and the DUET stage, then write the run directory `out`: config.json, the
    weights and train_log.jsonl (each event also goes to `listener`). Nothing is written before the inputs check.

    Started by torchrun (RANK, WORLD_SIZE, LOCAL_RANK set), each process trains on its shard of every batch, and
    rank 0 alone writes `out` (and logs and reports progress); config.json records the world size."""
    from toolkit.training.runs import check_new_run_dir, load_base

    out, world = Path(out), world_from_env()
    device = torch_device(train_cfg.torch_device, world)
    train_cfg = replace(train_cfg, torch_device=device.type, world_size=world.size)
    check_new_run_dir(out)
    gen_cfg = GeneratorConfig.for_task(task, context_dim(task, task.build_model()), **generator_options)
    base = load_base(Path(base_from), task).to(device) if base_from else None
    with process_group(world, device):
        barrier(world)  # every rank has checked `out` before rank 0 creates it
        if world.is_main:
            _train_and_save(out, task, train_cfg, gen_cfg, base, base_from, listener, progress, world, device)
        else:
            _train(task, train_cfg, gen_cfg, base, base_from, TrainLog(None), None, world, device)
        barrier(world)  # rank 0 has written the run when any rank returns
    return out


def _train(task: Task, cfg: TrainConfig, gen_cfg: GeneratorConfig, base: nn.Module | None, base_from: Path | None,
           log: TrainLog, progress, world: World, device: torch.device) -> tuple[nn.Module, nn.Module, nn.Module]:
    """(Base, DUET model, generator): both stages, or the DUET stage on `base` (an earlier run's, from `base_from`)."""
    log(event="start", task=task.name, config=task.config_json(), seed=cfg.seed)
    if base is None:
        base = train_base(task, cfg, log, progress, world, device)
    else:
        log(event="base_from", run=str(base_from))
    duet, generator = train_duet(task, base, gen_cfg, cfg, log, progress, world)
    return base, duet, generator


def _train_and_save(out: Path, task: Task, cfg: TrainConfig, gen_cfg: GeneratorConfig, base: nn.Module | None,
                    base_from: Path | None, listener, progress, world: World, device: torch.device) -> None:
    """`_train`, writing the run directory `out`: built in a work directory beside it (train_log.jsonl there as it
    goes) and renamed into place once complete, so no half run is left behind, and a killed train's work directory
    is removed by the next one (toolkit.artifacts.work_dir_beside)."""
    from toolkit.artifacts import work_dir_beside
    from toolkit.training.runs import LOG_FILE, check_new_run_dir, run_config, save_run

    try:
        work = work_dir_beside(out)
    except OSError as err:
        raise ConfigError(f"{out}: cannot write there ({err.strerror or err}); choose another --out") from err
    try:
        base, duet, generator = _train(task, cfg, gen_cfg, base, base_from, TrainLog(work / LOG_FILE, listener),
                                       progress, world, device)
        try:
            save_run(work, run_config(task, duet, gen_cfg, cfg), base, duet, generator)
            check_new_run_dir(out)  # still absent or empty
            if out.exists():
                out.rmdir()
            work.rename(out)
        except OSError as err:
            raise ConfigError(f"{out}: cannot write the run ({err.strerror or err}); nothing was written") from err
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
