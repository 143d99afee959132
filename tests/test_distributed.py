"""Data-parallel training under torchrun: 2 processes follow the 1-process optimisation; rank 0 alone writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import cli
from distributed_worker import step_gradients
from toolkit.training.distributed import World, world_from_env
from toolkit.errors import ConfigError
from toolkit.training.runs import load_run

REPO = Path(__file__).resolve().parents[1]
TINY = ["--max-users", "25", "--max-epochs", "2", "--embed-dim", "8", "--context-items", "20", "--batch-size", "100"]
# The two runs draw the same global batches and take the same steps; what differs is the dropout masks (each process
# draws its own for its rows) and the order in which float sums are taken. On the 2-core machine this was written on
# that moved an epoch's mean training loss by at most 1.1e-3; a process training on the wrong rows (every rank on the
# first rows of each batch) moved it by up to 4e-2. Exact agreement is the job of the gradient test below.
LOSS_TOLERANCE = 5e-3
GRADIENT_TOLERANCE = dict(rtol=1e-5, atol=1e-7)  # float32 sums of the same terms taken in another order


def torchrun(*args: str, cwd: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node N ARGS` (a free port of its own), on the CPU with one thread each."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(nproc), *args], cwd=cwd, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=300)


def epoch_losses(run_dir: Path) -> dict[tuple[str, int], float]:
    events = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return {(e["stage"], e["epoch"]): e["train_loss"] for e in events if "train_loss" in e}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir) -> tuple[Path, Path, Path]:
    """(a 1-process run, a 2-process run of the same command, the 2-process run's working directory). The 1-process
    run goes first: it fills the data cache, which the two processes then only read."""
    root = tmp_path_factory.mktemp("runs")
    single, double, cwd = root / "single", root / "double", root / "cwd"
    cwd.mkdir()
    args = ["train", "--cache-dir", str(cache_dir), "--device", "cpu", *TINY]
    result = CliRunner().invoke(cli.cli, ["--threads", "1", *args, "--out", str(single)])
    assert result.exit_code == 0, result.output
    done = torchrun(str(REPO / "cli.py"), "--threads", "1", *args, "--out", str(double), cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return single, double, cwd


def test_two_processes_follow_the_loss_curve_of_one(runs):
    single, double, _ = runs
    one, two = epoch_losses(single), epoch_losses(double)
    assert one.keys() == two.keys() == {(stage, epoch) for stage in ("base", "duet") for epoch in (1, 2)}
    for key in one:
        assert abs(one[key] - two[key]) <= LOSS_TOLERANCE, (key, one[key], two[key])


def test_rank_0_alone_writes_the_run_and_records_the_world_size(runs):
    single, double, cwd = runs
    assert sorted(p.name for p in double.iterdir()) == sorted(p.name for p in single.iterdir()) == [
        "base.safetensors", "config.json", "duet.safetensors", "train_log.jsonl"]
    assert not list(cwd.iterdir())  # nothing written beside the run either
    events = [json.loads(line) for line in (double / "train_log.jsonl").read_text().splitlines()]
    assert [e.get("event") for e in events].count("start") == 1  # a second rank would have logged too
    assert len(events) == len(single.joinpath("train_log.jsonl").read_text().splitlines())
    train = json.loads((double / "config.json").read_text())["train"]
    assert (train["world_size"], train["torch_device"]) == (2, "cpu")
    assert json.loads((single / "config.json").read_text())["train"]["world_size"] == 1


def test_the_two_process_run_loads_and_evaluates(runs, cache_dir):
    _, double, _ = runs
    run = load_run(double, cache_dir)
    assert run.config["train"]["world_size"] == 2
    result = CliRunner().invoke(cli.cli, ["evaluate", str(double), "--cache-dir", str(cache_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((double / "metrics.json").read_text())
    assert 0.0 <= metrics["duet"]["uauc"] <= 1.0
    assert json.loads((double / "evaluation.json").read_text())["torch_device"] == "cpu"


def test_sharded_gradients_summed_over_ranks_equal_the_whole_batch_gradient(tmp_path, cache_dir):
    """Uneven shards (3 and 4 rows) and an empty one (a 1-row batch on two ranks), with and without the generator."""
    step_gradients(cache_dir)  # fills the data cache before the two processes read it
    done = torchrun(str(REPO / "tests" / "distributed_worker.py"), str(cache_dir), str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    expected = step_gradients(cache_dir)
    for key, tensors in expected.items():
        rank0, rank1 = (load_file(tmp_path / f"rank{rank}-{key}.safetensors") for rank in (0, 1))
        assert rank0.keys() == rank1.keys() == tensors.keys(), key
        for name, value in tensors.items():
            assert torch.equal(rank0[name], rank1[name]), (key, name)  # the ranks step alike
            torch.testing.assert_close(rank0[name], value, **GRADIENT_TOLERANCE, msg=f"{key} {name}")


def test_shards_cover_a_batch_in_order_with_sizes_one_apart():
    for rows in (0, 1, 2, 7, 100, 101):
        for size in (1, 2, 3, 8):
            bounds = [World(rank, size).shard(rows) for rank in range(size)]
            assert bounds[0][0] == 0 and bounds[-1][1] == rows
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1


def test_the_world_comes_from_torchruns_environment():
    assert world_from_env({}) == World(0, 1, 0)
    assert world_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == World(1, 2, 1)
    with pytest.raises(ConfigError, match="incomplete: RANK set but WORLD_SIZE, LOCAL_RANK not"):
        world_from_env({"RANK": "0"})
    with pytest.raises(ConfigError, match="must hold integers"):
        world_from_env({"RANK": "zero", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    with pytest.raises(ConfigError, match="inconsistent: RANK=2, WORLD_SIZE=2"):
        world_from_env({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
