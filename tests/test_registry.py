"""The registries the CLI's choices come from: every entry imports and is what it claims; wrong pairs are refused."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import cli
from toolkit import registry
from toolkit.errors import ConfigError
from toolkit.tasks.base import Task
from toolkit.tasks.loading import task_class


@pytest.mark.parametrize("name", registry.task_names())
def test_every_registered_task_is_a_task_of_that_name(name):
    task = task_class(name)
    assert issubclass(task, Task) and task.name == name
    assert registry.backbone_names(name), f"task {name!r} has no backbone in the registry"


@pytest.mark.parametrize("task,backbone", [(t, b) for t in registry.BACKBONES for b in registry.BACKBONES[t]])
def test_every_registered_backbone_is_a_module_with_its_training_defaults(task, backbone):
    module = registry.backbone_class(task, backbone)
    assert issubclass(module, nn.Module)
    assert isinstance(module.train_defaults, dict)


def test_the_recommendation_backbones_decide_their_own_state_width_and_defaults():
    from toolkit.tasks.recommendation.model import RecModel, RecModelConfig

    for backbone, factor in (("sasrec", 1), ("gru4rec", 1), ("din", 2)):
        model = RecModel(RecModelConfig(backbone=backbone, n_items=20, max_len=4, embed_dim=8, head_hidden=8))
        assert model.head.shape.in_dim == factor * 8
        state = model.encoder(torch.zeros(2, 4, 8), torch.ones(2, 4, dtype=torch.bool), torch.zeros(2, 3, 8))
        assert state.shape == (2, 3, factor * 8)
    assert registry.backbone_class("recommendation", "din").train_defaults == {"backbone_lr": 0.0}


def test_a_backbone_of_another_task_or_an_unknown_name_is_refused():
    with pytest.raises(ConfigError, match="the image task has no backbone 'sasrec'; choose one of cnn"):
        registry.backbone_class("image", "sasrec")
    with pytest.raises(ConfigError, match="task 'audio': 'audio' is not an import path 'package.module:name'; give a "
                                          "task name \\(recommendation, image\\) or the import path of a Task"):
        task_class("audio")


def test_the_cli_choices_are_the_registries(tmp_path):
    train = {p.name: p for p in cli.cli.commands["train"].params}
    assert all(name in train["task_name"].help for name in registry.task_names())  # names, or an import path
    assert list(train["backbone"].type.choices) == registry.backbone_names()
    from toolkit.exporting.targets import target_names
    from toolkit.data.download import DATASETS
    from toolkit.data.formats import FORMATS

    assert list(train["data_format"].type.choices) == list(FORMATS)
    assert list({p.name: p for p in cli.cli.commands["download"].params}["name"].type.choices) == list(DATASETS)
    assert list({p.name: p for p in cli.cli.commands["export"].params}["targets"].type.choices) == target_names() + ["all"]
    result = CliRunner().invoke(cli.cli, ["train", "--task", "image", "--backbone", "din", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "the image task has no backbone 'din'; choose one of cnn" in result.output
    assert not (tmp_path / "r").exists()


def test_train_into_a_directory_that_is_not_empty_writes_nothing(tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "train_log.jsonl").write_text('{"mine": true}\n')
    result = CliRunner().invoke(cli.cli, ["train", "--out", str(out), "--max-users", "5"])
    assert result.exit_code == 2 and "exists and is not an empty directory" in result.output
    assert json.loads((out / "train_log.jsonl").read_text()) == {"mine": True}


def test_set_passes_a_task_setting_that_has_no_option_of_its_own(tmp_path):
    out = tmp_path / "r"
    result = CliRunner().invoke(cli.cli, ["train", "--task", "image", "--out", str(out), "--set", "episodes_per_epoch=1",
                                          "--train-devices", "6", "--test-devices", "2", "--max-epochs", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["task_config"]["episodes_per_epoch"] == 1
    bad = CliRunner().invoke(cli.cli, ["train", "--out", str(tmp_path / "b"), "--set", "no-equals-sign"])
    assert bad.exit_code == 2 and "is not NAME=VALUE" in bad.output and not (tmp_path / "b").exists()
