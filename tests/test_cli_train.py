"""`cli.py train` and `cli.py evaluate` end to end on a small slice of the real data, in-process."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from safetensors.torch import load_file

import cli
from toolkit.training.runs import load_run

METHOD_KEYS = {"auc", "uauc", "logloss", "ndcg@5", "ndcg@10", "ndcg@20", "hr@5", "hr@10", "hr@20"}
TINY = ["--max-users", "25", "--max-epochs", "1", "--embed-dim", "8", "--context-items", "20"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


def _train(tmp_path, cache_dir, *extra):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli.cli, ["train", "--out", str(out), "--cache-dir", cache_dir, *TINY, *extra])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "din"])
def test_train_writes_a_complete_run_for_each_backbone(tmp_path, cache_dir, backbone):
    out = _train(tmp_path, cache_dir, "--backbone", backbone)
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "recommendation"
    assert config["task_config"]["model"]["backbone"] == backbone
    assert {"generator.encoder.embed.0.weight", "model.item_embedding.weight"} <= set(load_file(out / "duet.safetensors"))
    events = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {e.get("stage") for e in events} >= {"base", "duet"}
    assert not list(out.glob("*.pt")) and not list(out.glob("*.pkl"))
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert len(set(modes.values())) == 1, modes  # weights as readable as config.json (safetensors writes 0600)
    run = load_run(out, cache_dir=None)
    assert run.task.name == "recommendation"


def test_same_seed_same_weights(tmp_path, cache_dir):
    first = load_file(_train(tmp_path / "a", cache_dir) / "duet.safetensors")
    second = load_file(_train(tmp_path / "b", cache_dir) / "duet.safetensors")
    assert first.keys() == second.keys()
    assert all((first[k] == second[k]).all() for k in first)


def test_evaluate_writes_metrics_of_the_documented_shape(tmp_path, cache_dir):
    out = _train(tmp_path, cache_dir)
    result = CliRunner().invoke(cli.cli, ["evaluate", str(out), "--cache-dir", cache_dir])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"base", "finetune", "duet", "finetune_seconds_per_device", "generate_seconds_per_device"}
    for method in ("base", "finetune", "duet"):
        assert set(metrics[method]) == METHOD_KEYS
        assert 0.0 <= metrics[method]["uauc"] <= 1.0
    assert metrics["finetune_seconds_per_device"] > metrics["generate_seconds_per_device"] > 0
    shifted = json.loads((out / "metrics_shifted.json").read_text())
    assert shifted["devices"] == round(shifted["of_devices"] * 0.25)
    assert "uauc" in shifted["duet"]


def test_train_refuses_to_overwrite_a_run(tmp_path, cache_dir):
    out = _train(tmp_path, cache_dir)
    result = CliRunner().invoke(cli.cli, ["train", "--out", str(out), "--cache-dir", cache_dir, *TINY])
    assert result.exit_code == 2
    assert "already holds a run" in result.output


def test_bad_data_file_is_a_clear_error_not_a_traceback(tmp_path, cache_dir):
    bad = tmp_path / "ratings.dat"
    bad.write_text("1::10::5::100\n1::11::oops\n")
    result = CliRunner().invoke(cli.cli, ["train", "--out", str(tmp_path / "r"), "--data", str(bad),
                                          "--format", "ml-1m", "--cache-dir", cache_dir])
    assert result.exit_code == 2
    assert "ratings.dat, line 2: expected 4 fields" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "r" / "config.json").exists()


def test_data_without_format_is_refused(tmp_path):
    result = CliRunner().invoke(cli.cli, ["train", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--data needs --format" in result.output


def test_evaluate_on_a_directory_without_a_run(tmp_path):
    result = CliRunner().invoke(cli.cli, ["evaluate", str(tmp_path)])
    assert result.exit_code == 2 and "config.json is missing" in result.output


def test_base_from_reuses_the_base_and_refuses_other_data(tmp_path, cache_dir):
    first = _train(tmp_path / "a", cache_dir)
    second = _train(tmp_path / "b", cache_dir, "--base-from", str(first), "--no-stabilizer", "--context-items", "10")
    base_a, base_b = load_file(first / "base.safetensors"), load_file(second / "base.safetensors")
    assert all((base_a[k] == base_b[k]).all() for k in base_a)
    events = (second / "train_log.jsonl").read_text()
    assert '"base_from"' in events and '"stage": "base"' not in events
    result = CliRunner().invoke(cli.cli, ["train", "--out", str(tmp_path / "c"), "--cache-dir", cache_dir,
                                          *TINY[:-4], "--embed-dim", "16", "--base-from", str(first)])
    assert result.exit_code == 2 and "another architecture" in result.output


def test_base_from_works_for_the_image_task_whose_config_holds_tuples(tmp_path, cache_dir):
    tiny = ["--task", "image", "--max-epochs", "1", "--train-devices", "20", "--test-devices", "4",
            "--cache-dir", cache_dir]
    first, second = tmp_path / "a", tmp_path / "b"
    for out, extra in ((first, []), (second, ["--base-from", str(first), "--no-stabilizer"])):
        result = CliRunner().invoke(cli.cli, ["train", "--out", str(out), *tiny, *extra])
        assert result.exit_code == 0, result.output
    base_a, base_b = load_file(first / "base.safetensors"), load_file(second / "base.safetensors")
    assert all((base_a[k] == base_b[k]).all() for k in base_a)
    result = CliRunner().invoke(cli.cli, ["train", "--out", str(tmp_path / "c"), *tiny[:-4], "--train-devices", "24",
                                          "--test-devices", "4", "--base-from", str(first)])
    assert result.exit_code == 2 and "other data" in result.output


def test_download_of_an_unknown_data_set_is_refused():
    result = CliRunner().invoke(cli.cli, ["download", "ml-999"])
    assert result.exit_code == 2 and "ml-999" in result.output


def test_report_renders_the_evaluated_metrics(tmp_path, cache_dir):
    out = _train(tmp_path, cache_dir)
    assert CliRunner().invoke(cli.cli, ["evaluate", str(out), "--cache-dir", cache_dir]).exit_code == 0
    result = CliRunner().invoke(cli.cli, ["report", str(out), "--metrics", "uauc,ndcg@10"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert result.exit_code == 0
    assert f"| duet | {metrics['duet']['uauc']:.4f} |" in result.output
    assert f"{metrics['duet']['uauc'] - metrics['base']['uauc']:+.4f}" in result.output


def test_report_on_an_unevaluated_run_says_what_to_do(tmp_path, cache_dir):
    out = _train(tmp_path, cache_dir)
    result = CliRunner().invoke(cli.cli, ["report", str(out)])
    assert result.exit_code == 2 and "cli.py evaluate" in result.output


def test_ablation_report_names_the_generator_settings(tmp_path, cache_dir):
    out = _train(tmp_path, cache_dir, "--no-stabilizer", "--rank", "2", "--code-dim", "16")
    generator = json.loads((out / "config.json").read_text())["generator"]
    assert (generator["rank"], generator["code_dim"]) == (2, 16)
    assert CliRunner().invoke(cli.cli, ["evaluate", str(out), "--cache-dir", cache_dir]).exit_code == 0
    result = CliRunner().invoke(cli.cli, ["report", "--ablation", str(out)])
    assert result.exit_code == 0, result.output
    assert "stabilizer=False, code=16, per-sample=16, rank=2" in result.output  # per-sample: the recommendation default
    assert "context=20 items, time=True" in result.output
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["slot_change_per_new_sample"] > 0


def test_a_diverging_loss_stops_training_and_leaves_no_run(tmp_path, cache_dir):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli.cli, ["train", "--out", str(out), "--cache-dir", cache_dir, *TINY, "--lr", "1e30"])
    assert result.exit_code == 2, result.output
    assert "base stage, epoch 1, step" in result.output and "the training loss is" in result.output
    assert not out.exists()
