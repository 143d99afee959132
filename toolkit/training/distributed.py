"""Where a run computes: the torch device (`--device`), torchrun's process group, batch shards, gradient sums."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import torch
import torch.distributed as dist

from toolkit.errors import ConfigError

logger = logging.getLogger(__name__)

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")  # what torchrun sets in every process it starts


@dataclass(frozen=True)
class World:
    """The processes training one run together: this one's rank among them, and how many there are."""

    rank: int = 0  # this process's rank; rank 0 alone writes the run directory
    size: int = 1  # processes in the group (1: a plain run, no process group)
    local_rank: int = 0  # rank on this machine: the CUDA device index a process uses

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, rows: int) -> tuple[int, int]:
        """This process's rows [start, stop) of a batch of `rows`: contiguous blocks in rank order whose sizes differ
        by at most one (a rank gets none when the batch has fewer rows than there are processes)."""
        return rows * self.rank // self.size, rows * (self.rank + 1) // self.size


SINGLE = World()


def world_from_env(environ: Mapping[str, str] = os.environ) -> World:
    """The World torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK), or SINGLE when it is absent."""
    present = [name for name in TORCHRUN_ENV if name in environ]
    if not present:
        return SINGLE
    if len(present) < len(TORCHRUN_ENV):
        missing = [name for name in TORCHRUN_ENV if name not in environ]
        raise ConfigError(f"torchrun's environment is incomplete: {', '.join(present)} set but {', '.join(missing)} "
                          f"not; start distributed training with `torchrun --nproc_per_node N cli.py train ...`")
    try:
        rank, size, local_rank = (int(environ[name]) for name in TORCHRUN_ENV)
    except ValueError as err:
        raise ConfigError("torchrun's environment must hold integers: " + ", ".join(
            f"{name}={environ[name]!r}" for name in TORCHRUN_ENV)) from err
    if not (size >= 1 and 0 <= rank < size and local_rank >= 0):
        raise ConfigError(f"torchrun's environment is inconsistent: RANK={rank}, WORLD_SIZE={size}, "
                          f"LOCAL_RANK={local_rank} (expected 0 <= RANK < WORLD_SIZE, LOCAL_RANK >= 0)")
    return World(rank, size, local_rank)


def torch_device(requested: str, world: World = SINGLE) -> torch.device:
    """The torch device of `--device`: "cpu", "cuda" (ConfigError when PyTorch sees no CUDA GPU), or "auto" (CUDA
    when available, else the CPU). On CUDA each process of a group uses the GPU of its local rank."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device {requested!r}: expected auto, cpu or cuda")
    if requested == "cpu" or not torch.cuda.is_available():
        if requested == "cuda":
            raise ConfigError(f"--device cuda: PyTorch {torch.__version__} sees no CUDA GPU here; use --device cpu "
                              f"(or auto)")
        return torch.device("cpu")
    if world.local_rank >= torch.cuda.device_count():
        raise ConfigError(f"local rank {world.local_rank} has no GPU of its own: {torch.cuda.device_count()} visible; "
                          f"start at most that many processes per machine")
    return torch.device("cuda", world.local_rank)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so that a wall-clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """torchrun's process group for the block (gloo on the CPU, nccl on CUDA), from its environment (MASTER_ADDR,
    MASTER_PORT); nothing for a single process, or when the caller has set a group up already."""
    if world.size == 1 or dist.is_initialized():
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=world.rank, world_size=world.size)
    logger.info("rank %d of %d on %s", world.rank, world.size, device)
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier(world: World) -> None:
    """Every process of the group reaches this point before any goes on."""
    if world.size > 1:
        dist.barrier()


def from_main(value: float, world: World, device: torch.device) -> float:
    """Rank 0's `value` on every rank (what the others pass is ignored): decisions taken on it agree everywhere."""
    if world.size == 1:
        return value
    tensor = torch.tensor([value if world.is_main else 0.0], dtype=torch.float64, device=device)
    dist.broadcast(tensor, 0)
    return float(tensor.item())


def broadcast_modules(modules: Sequence[torch.nn.Module], world: World) -> None:
    """Rank 0's parameters and buffers copied into every rank's modules (DistributedDataParallel's start)."""
    if world.size == 1:
        return
    with torch.no_grad():
        for module in modules:
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, 0)


def sum_gradients(params: Sequence[torch.Tensor], loss: torch.Tensor, world: World) -> float:
    """Sum each parameter's gradient and the loss over the group's processes in one all-reduce; returns the sum.

    Every process weights its shard's mean loss by the shard's share of the batch before `backward`, so the sums
    are the batch's mean loss and its gradient, for shards of any sizes (empty ones included). A parameter that
    no process gave a gradient keeps None, as it would in one process (Adam then leaves it alone).
    """
    if world.size == 1:
        return float(loss)
    device = params[0].device
    grads = [p.grad if p.grad is None or not p.grad.is_sparse else p.grad.to_dense() for p in params]
    flat = torch.cat([torch.zeros(p.numel(), dtype=p.dtype, device=device) if g is None else g.reshape(-1)
                      for p, g in zip(params, grads)]
                     + [torch.tensor([float(g is not None) for g in grads] + [float(loss)], dtype=params[0].dtype,
                                     device=device)])
    dist.all_reduce(flat)
    start = 0
    for p in params:
        p.grad = flat[start : start + p.numel()].view_as(p)
        start += p.numel()
    for p, present in zip(params, flat[start:-1].tolist()):
        if not present:
            p.grad = None
    return float(flat[-1])
