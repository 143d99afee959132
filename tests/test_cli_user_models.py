"""`cli.py train --task package.module:Class` and `cli.py export --model package.module:factory --slots ...` with a
task and a model the toolkit has never seen (a module this test writes), and one line, exit 2, for each bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

USER_MODULE = textwrap.dedent('''
    """A user's own package: a model and a task, nothing of the toolkit's registry."""
    from dataclasses import dataclass

    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    import toolkit as duet


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(5, 8)
            self.norm = nn.LayerNorm(8)
            self.out = nn.Linear(8, 2)

        def forward(self, x):
            return self.out(self.norm(torch.relu(self.body(x))))


    def build():
        return Net()


    def broken():
        raise RuntimeError("no weights here")


    NOT_A_MODEL = 42


    @dataclass
    class Points(duet.Task):
        devices_per_split: int = 4
        seed: int = 0
        selection_metric = "accuracy"

        def __post_init__(self):
            rng = np.random.default_rng(self.seed)
            self.x = rng.normal(size=(self.devices_per_split, 10, 5)).astype(np.float32)
            self.y = (self.x[..., 0] > 0).astype(np.int64)

        def build_model(self):
            return duet.personalize(Net(), duet.SlotConfig(["norm", "out"]))

        def devices(self, split):
            return np.arange(self.devices_per_split)

        def context(self, devices, split):
            x = torch.from_numpy(self.x[np.asarray(devices), :4])
            return duet.Samples({"x": x}, torch.ones(x.shape[:2], dtype=torch.bool))

        def batches(self, split, *, device=None, rng=None, batch_size=None):
            rows = self.devices(split) if device is None else np.array([device])
            yield duet.Batch((torch.from_numpy(self.x[rows, 4:].reshape(-1, 5)),),
                             torch.from_numpy(self.y[rows, 4:].reshape(-1)), rows)

        def loss(self, outputs, batch):
            return F.cross_entropy(outputs, batch.targets)

        def metrics(self, outputs, targets, devices):
            return {"accuracy": float((outputs.argmax(-1) == targets).mean())}
''')


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("user")
    (folder / "my_models.py").write_text(USER_MODULE)
    return folder


def cli(folder: Path, *args: str, installed: Path | None = None) -> subprocess.CompletedProcess:
    """`python cli.py ARGS` run from the user's folder (its modules importable from there, as with `python -m`);
    `installed`: a folder on the path as site-packages would be (the packages whose metadata it holds are installed)."""
    env = {**os.environ, "PYTHONPATH": str(installed)} if installed else None
    return subprocess.run([sys.executable, str(REPO / "cli.py"), "--threads", "1", *map(str, args)], cwd=folder,
                          capture_output=True, text=True, timeout=600, env=env)


def test_train_takes_a_task_by_import_path_and_evaluate_and_export_find_it_again(user_dir, tmp_path):
    run = tmp_path / "run"
    done = cli(user_dir, "train", "--task", "my_models:Points", "--set", "devices_per_split=5", "--max-epochs", "1",
               "--out", run)
    assert done.returncode == 0, done.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "my_models:Points" and config["task_config"] == {"devices_per_split": 5, "seed": 0}
    assert config["task_path"] == str(user_dir.resolve())
    elsewhere = cli(REPO, "evaluate", run)  # not the user's folder: the run says where its task's module is
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert set(json.loads((run / "metrics.json").read_text())) >= {"base", "finetune", "duet"}


def test_export_takes_a_model_by_import_path_with_its_slots_and_inputs(user_dir, tmp_path):
    out = tmp_path / "exports"
    done = cli(user_dir, "export", "--model", "my_models:build", "--slots", "norm,out", "--input", "x=3x5",
               "--target", "executorch", "--target", "tflite", "--target", "coreml", "--quantize", "none",
               "--latency-calls", "5", "--out", out)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["name"] for s in manifest["slots"]] == ["norm.weight", "norm.bias", "out.weight", "out.bias"]
    assert manifest["inputs"] == [{"name": "x", "shape": [3, 5], "dtype": "float32", "description": ""}]
    assert manifest["task"] == "model:my_models:build" and "generate" not in manifest  # no generator serves it
    report = json.loads((out / "report.json").read_text())
    assert set(report["targets"]) == {"executorch", "tflite", "coreml"}
    for target in report["targets"].values():
        assert set(target["parity"]["cases"]) == {"base", "base-perturbed-1", "base-perturbed-2", "random-probe"}
        assert max(case["max_abs_diff"] for case in target["parity"]["cases"].values()) <= 1e-4


@pytest.mark.parametrize("args,words", [
    (["train", "--task", "my_models:Nope", "--out", "x"], "task 'my_models:Nope': 'my_models' has no attribute 'Nope'"),
    (["train", "--task", "no_such_pkg.mod:Task", "--out", "x"], "cannot import 'no_such_pkg.mod'"),
    (["train", "--task", "my_models:build", "--out", "x"], "build is a function, not a subclass of toolkit.Task"),
    (["train", "--task", "audio", "--out", "x"], "'audio' is not an import path"),
    (["export", "--model", "my_models:broken", "--slots", "out", "--input", "x=1x5", "--out", "x"],
     "building it raised RuntimeError: no weights here"),
    (["export", "--model", "my_models:NOT_A_MODEL", "--slots", "out", "--input", "x=1x5", "--out", "x"],
     "NOT_A_MODEL is an int, not a class or function"),
    (["export", "--model", "my_models:nothing", "--slots", "out", "--input", "x=1x5", "--out", "x"],
     "has no attribute 'nothing'"),
    (["export", "--model", "my_models:build", "--input", "x=1x5", "--out", "x"], "name its slot modules with --slots"),
    (["export", "--model", "my_models:build", "--slots", "outt", "--input", "x=1x5", "--out", "x"],
     "target 'outt' matches no module of Net; modules that can hold slots: body (Linear), norm (LayerNorm), out"),
    (["export", "--model", "my_models:build", "--slots", "out", "--out", "x"], "needs its program's inputs"),
    (["export", "--model", "my_models:build", "--slots", "out", "--input", "x=1xfive", "--out", "x"],
     "is not NAME=DIMS"),
    (["export", "--model", "my_models:build", "--slots", "out", "--input", "x=1x5:int32", "--out", "x"],
     "an int32 input needs its range"),
    (["export", "--model", "my_models:build", "--slots", "out", "--input", "x=1x4", "--out", "x"],
     "the model does not run on the inputs x=[1, 4] (float32)"),
    (["export", "--out", "x"], "give RUN_DIR (a trained run) or --model"),
])
def test_bad_tasks_and_models_get_one_line_and_exit_2(user_dir, args, words):
    done = cli(user_dir, *args)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert words in output and "Traceback" not in output, output
    assert not (user_dir / "x").exists()


def test_an_installed_package_registers_its_task_under_a_name(tmp_path):
    """A `duet.tasks` entry point (here the metadata a pip install writes, on the path) makes the task a name that
    `train --task` and `--help` know."""
    site = tmp_path / "site-packages"
    dist = site / "my_models-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-models\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[duet.tasks]\npoints = my_models:Points\n")
    (site / "my_models.py").write_text(USER_MODULE)
    helped = cli(tmp_path, "train", "--help", installed=site)
    assert "(recommendation, image, points)" in " ".join(helped.stdout.split()), helped.stdout
    run = tmp_path / "run"
    done = cli(tmp_path, "train", "--task", "points", "--max-epochs", "1", "--out", run, installed=site)
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "config.json").read_text())["task"] == "my_models:Points"
