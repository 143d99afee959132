"""What a run is made from and read back with is checked (issue 23): configs with NaN or out-of-range settings,
scores that are not numbers, trainings that take no step, and a training killed midway."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from service_fixtures import CACHE, REPO, nan_generator_copy

from toolkit.config import FinetuneConfig, GeneratorConfig, TrainConfig
from toolkit.errors import ConfigError, EvaluationError
from toolkit.training.runs import load_run


def _with_config(svc_run: Path, dest: Path, text: str) -> Path:
    shutil.copytree(svc_run, dest)
    (dest / "config.json").write_text(text)
    return dest


@pytest.mark.parametrize("value, words", [
    ("NaN", "NaN is not a number JSON allows"),
    ("Infinity", "Infinity is not a number JSON allows"),
    ("1e999", "the number 1e999 is out of range"),
    ("0", "time_std finite and > 0"),
    ("-5.0", "time_std finite and > 0"),
])
def test_a_config_with_a_setting_that_is_not_a_finite_number_in_range_is_refused(svc_run, tmp_path, value, words):
    text = (svc_run / "config.json").read_text()
    config = json.loads(text)
    original = json.dumps(config["task_config"]["model"]["time_std"])
    assert text.count(original) == 1
    run = _with_config(svc_run, tmp_path / "run", text.replace(original, value))
    with pytest.raises(ConfigError, match=f"config.json.*{words}"):
        load_run(run, CACHE)


@pytest.mark.parametrize("section, key, value", [("generator", "dropout", 1.5), ("generator", "n_candidates", 0),
                                                 ("generator", "code_dim", 10**7), ("generator", "rank", 2.5)])
def test_generator_settings_out_of_range_are_refused(svc_run, tmp_path, section, key, value):
    config = json.loads((svc_run / "config.json").read_text())
    config[section][key] = value
    run = _with_config(svc_run, tmp_path / "run", json.dumps(config))
    with pytest.raises(ConfigError, match=f"config.json.*{key}"):
        load_run(run, CACHE)


def test_a_config_json_that_is_a_directory_or_a_device_is_one_error(svc_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(svc_run, run)
    (run / "config.json").unlink()
    (run / "config.json").mkdir()
    with pytest.raises(ConfigError, match="config.json: cannot read it"):
        load_run(run, CACHE)
    (run / "config.json").rmdir()
    (run / "config.json").symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match="config.json: cannot read it \\(not a regular file\\)"):
        load_run(run, CACHE)


def test_evaluate_refuses_scores_that_are_not_numbers_and_writes_nothing(svc_run, tmp_path):
    from toolkit.evaluation.evaluate import evaluate_run

    run = load_run(nan_generator_copy(svc_run, tmp_path / "run"), CACHE)
    with pytest.raises(EvaluationError, match="duet scored test device .* NaN"):
        evaluate_run(run, FinetuneConfig(torch_device="cpu"))
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("settings", [{"batch_size": -3}, {"batch_size": 0}, {"max_epochs": 0}, {"patience": -1},
                                      {"lr": float("nan")}, {"lr": -1.0}, {"generator_lr": float("inf")},
                                      {"seed": -1}])
def test_training_settings_out_of_range_are_refused(settings):
    name = next(iter(settings))
    with pytest.raises(ConfigError, match=f"training settings: {name} must be a finite number"):
        TrainConfig(**settings)


def test_generator_and_finetune_settings_are_checked_in_code_too():
    with pytest.raises(ConfigError, match="rank=0"):
        GeneratorConfig(context_dim=8, rank=0)
    with pytest.raises(ConfigError, match="lr"):
        FinetuneConfig(lr=float("nan"))
    assert FinetuneConfig().lr is None  # None: the task's default


def test_a_stage_that_would_take_no_step_is_an_error(svc_run):
    from toolkit.training.train import TrainLog, train_base

    task = load_run(svc_run, CACHE).task
    task.data.splits["train"] = tuple(part[:0] for part in task.data.splits["train"])  # no training sample left
    with pytest.raises(ConfigError, match="base stage, epoch 1: the training data gives no batch"):
        train_base(task, TrainConfig(max_epochs=1), TrainLog(None))


def _train(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "cli.py"), "--threads", "1", "train", "--out", str(out),
                             "--max-users", "40", "--max-epochs", "3", "--cache-dir", str(CACHE)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_killed_train_leaves_nothing_that_blocks_a_rerun(tmp_path):
    out = tmp_path / "run"
    killed = _train(out)
    deadline = time.monotonic() + 120
    while not list(tmp_path.rglob("train_log.jsonl")):  # training has begun writing its log
        assert killed.poll() is None and time.monotonic() < deadline, killed.stdout.read()
        time.sleep(0.1)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(30)
    assert not (out / "config.json").exists()
    again = _train(out)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    assert sorted(p.name for p in out.iterdir()) == ["base.safetensors", "config.json", "duet.safetensors",
                                                     "train_log.jsonl"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # the killed one's work directory is gone
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert sum(event.get("event") == "start" for event in log) == 1  # only the second training's events


def test_scores_are_checked_before_they_become_metrics(svc_run):
    from toolkit.evaluation.evaluate import check_finite_outputs
    from toolkit.training.steps import SplitOutputs

    run = load_run(svc_run, CACHE)
    check_finite_outputs({"base": SplitOutputs(np.array([[0.5, -2.0]]), None, np.array([1]))}, run)
    scored = SplitOutputs(np.array([[0.5, 1.0], [0.5, np.inf]]), None, np.array([1, 7]))
    with pytest.raises(EvaluationError, match="finetune scored test device 7 with 0 NaN and 1 infinite"):
        check_finite_outputs({"finetune": scored}, run)
