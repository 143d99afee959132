"""`--device auto|cpu|cuda` of train and evaluate: how it resolves, its error without CUDA, tensors placed alike."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import cli
from toolkit.data.digits import DigitsDeviceConfig
from toolkit.data.sequences import SequenceProtocol
from toolkit.training.distributed import World, torch_device
from toolkit.errors import ConfigError
from toolkit.model.generator import GeneratorConfig, ParameterGenerator
from toolkit.model.slots import slot_specs
from toolkit.training.steps import batch_loss, batch_outputs, context_dim
from toolkit.training.runs import CONFIG_FILE, load_run, run_config, save_run
from toolkit.tasks.image.task import ImageTask, ImageTaskConfig
from toolkit.tasks.recommendation.task import RecommendationTask, RecTaskConfig
from toolkit.training.train import TrainConfig

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a CUDA GPU")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def rec_task(cache_dir):
    return RecommendationTask(RecTaskConfig(protocol=SequenceProtocol(max_users=12, max_len=8, eval_negatives=9),
                                            embed_dim=8, context_items=10), cache_dir)


@pytest.fixture(scope="module")
def image_task():
    return ImageTask(ImageTaskConfig(devices=DigitsDeviceConfig(train_devices=12, test_devices=5, context_images=4,
                                                                images_per_device=10)))


@pytest.fixture(scope="module")
def untrained_run(rec_task, tmp_path_factory):
    """A run of freshly initialised weights (nothing to train for what is checked here)."""
    base, duet = rec_task.build_model(), rec_task.build_model()
    config = GeneratorConfig(context_dim=context_dim(rec_task, duet))
    path = tmp_path_factory.mktemp("run") / "untrained"
    save_run(path, run_config(rec_task, duet, config, TrainConfig()), base, duet,
             ParameterGenerator(config, slot_specs(duet)))
    return path


def test_cpu_is_the_cpu_and_auto_is_the_cpu_without_cuda():
    assert torch_device("cpu") == torch.device("cpu")
    assert torch_device("auto") == (torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))
    assert torch_device("cpu", World(1, 2, 1)) == torch.device("cpu")


@no_cuda
def test_cuda_without_a_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match=r"--device cuda: PyTorch .* sees no CUDA GPU here; use --device cpu"):
        torch_device("cuda")
    with pytest.raises(ConfigError, match="expected auto, cpu or cuda"):
        torch_device("tpu")


@no_cuda
def test_train_with_cuda_but_no_gpu_ends_with_one_line_and_writes_nothing(tmp_path, cache_dir):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli.cli, ["train", "--out", str(out), "--cache-dir", str(cache_dir), "--max-users",
                                          "12", "--device", "cuda"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert "error: --device cuda: PyTorch" in result.output and "sees no CUDA GPU" in result.output
    assert not out.exists()


@no_cuda
def test_evaluate_with_cuda_but_no_gpu_ends_with_one_line_and_writes_nothing(untrained_run, cache_dir):
    result = CliRunner().invoke(cli.cli, ["evaluate", str(untrained_run), "--cache-dir", str(cache_dir),
                                          "--device", "cuda"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: --device cuda:") and len(result.output.strip().splitlines()) == 1
    assert not (untrained_run / "metrics.json").exists()


def test_runs_saved_before_the_device_and_world_size_were_recorded_still_load(untrained_run, tmp_path, cache_dir):
    config = json.loads((untrained_run / CONFIG_FILE).read_text())
    assert (config["train"]["torch_device"], config["train"]["world_size"]) == ("auto", 1)  # TrainConfig's defaults
    old = tmp_path / "old"
    old.mkdir()
    for name in ("base.safetensors", "duet.safetensors"):
        (old / name).write_bytes((untrained_run / name).read_bytes())
    del config["train"]["torch_device"], config["train"]["world_size"]
    (old / CONFIG_FILE).write_text(json.dumps(config))
    assert load_run(old, cache_dir).generator is not None


@pytest.mark.parametrize("task_name", ["rec_task", "image_task"])
def test_tasks_build_their_tensors_on_the_models_torch_device(request, task_name):
    """On the meta device (shapes without data) every op mixing in a CPU tensor fails, as it would on CUDA."""
    task = request.getfixturevalue(task_name)
    torch.manual_seed(0)
    dim = context_dim(task, task.build_model())
    model = task.build_model().to("meta")
    generator = ParameterGenerator(GeneratorConfig(context_dim=dim), slot_specs(model)).to("meta")
    batch = next(iter(task.batches("train", rng=np.random.default_rng(0), batch_size=64)))
    assert batch_loss(task, model, batch, generator).device.type == "meta"
    assert batch_loss(task, model, batch.slice(2, 5), None).device.type == "meta"
    device = int(task.devices("test")[0])
    assert task.device_context(model, device, "test").vectors.device.type == "meta"
    finetune = next(iter(task.batches("finetune", device=device, rng=np.random.default_rng(0))))
    assert task.loss(batch_outputs(task, model, finetune, None), finetune).device.type == "meta"


def test_a_batch_slice_holds_those_rows_of_every_field(rec_task, image_task):
    for task in (rec_task, image_task):
        batch = next(iter(task.batches("train", rng=np.random.default_rng(0), batch_size=40)))
        part = batch.slice(1, 3)
        assert part.rows == 2 and batch.rows >= 3
        per_row = len(batch.inputs[0]) // batch.rows
        assert np.array_equal(part.devices, batch.devices[1:3])
        for got, value in zip(part.inputs, batch.inputs):
            assert torch.equal(got, value[per_row : 3 * per_row])
        if batch.targets is not None:
            assert torch.equal(part.targets, batch.targets[per_row : 3 * per_row])
        for name, value in batch.context.fields.items():
            assert torch.equal(part.context.fields[name], value[1:3]), name
        assert torch.equal(part.context.mask, batch.context.mask[1:3])
