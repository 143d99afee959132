"""A run directory that is damaged or was never a run: every command says which file and what is wrong, no traceback."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from service_fixtures import CACHE

import cli


@pytest.fixture
def damaged(svc_run, tmp_path):
    """A fresh copy of the tiny run, to damage."""
    copy = tmp_path / "run"
    shutil.copytree(svc_run, copy)
    return copy


def _evaluate(run) -> tuple[int, str]:
    result = CliRunner().invoke(cli.cli, ["evaluate", str(run), "--cache-dir", str(CACHE)])
    return result.exit_code, result.output


@pytest.mark.parametrize("name", ["base.safetensors", "duet.safetensors"])
@pytest.mark.parametrize("damage", ["truncated", "random", "empty"])
def test_a_damaged_weights_file_is_named(damaged, name, damage):
    path = damaged / name
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 3], "random": bytes(range(256)) * 40, "empty": b""}[damage])
    code, output = _evaluate(damaged)
    assert code == 2 and f"{name} is not a readable safetensors file" in output, output
    assert "Traceback" not in output


@pytest.mark.parametrize("config,words", [
    ([], "a run's config is a JSON object, found list"),
    ({"task": "recommendation"}, "'task_config' must be a JSON object"),
    ({"task": "audio", "task_config": {}, "generator": {}}, "task 'audio': 'audio' is not an import path"),
    ({"task": "no_such_module:Task", "task_config": {}, "generator": {}}, "cannot import 'no_such_module'"),
    ({"task": ["recommendation"]}, "'task' must name the run's task"),
])
def test_a_config_that_is_not_a_runs_is_named(damaged, config, words):
    (damaged / "config.json").write_text(json.dumps(config))
    code, output = _evaluate(damaged)
    assert code == 2 and "config.json" in output and words in output, output


@pytest.mark.parametrize("edit,words", [
    (lambda c: c["generator"].update(not_a_setting=1), "cannot rebuild the run"),
    (lambda c: c["generator"].update(code_dim="sixty-four"), "config.json: generator settings: sizes must be integers"),
    (lambda c: c["task_config"]["model"].update(n_heads=3), "config.json: embed_dim 32 is not divisible by n_heads 3"),
    (lambda c: c["task_config"]["model"].update(embed_dim=4), "base.safetensors: does not match config.json"),
    (lambda c: c["task_config"]["model"].update(backbone="lstm"), "has no backbone 'lstm'"),
])
def test_a_config_the_weights_cannot_come_from_is_named(damaged, edit, words):
    config = json.loads((damaged / "config.json").read_text())
    edit(config)
    (damaged / "config.json").write_text(json.dumps(config))
    code, output = _evaluate(damaged)
    assert code == 2 and words in output and "Traceback" not in output, output
    assert not (damaged / "metrics.json").exists()
