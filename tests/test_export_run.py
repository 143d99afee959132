"""export_run and `cli.py export`: files, manifest and report of a run's export; what is refused; the schema."""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import pytest

from toolkit.exporting.targets import target_names
from toolkit.exporting.contract import MAX_METRIC_DROP, ExportOptions, InputShapeError
from toolkit.artifacts import served_digest
from toolkit.errors import ConfigError, ManifestError
from toolkit.protocol.manifest import load_manifest, validate_manifest

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "duet"
QUICK = ExportOptions(quantize="none", latency_calls=20, max_eval_devices=4)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """An untrained run of 12 MovieLens users with 8-wide embeddings (a few KB of weights), saved and reloaded."""
    from toolkit.data.sequences import SequenceProtocol
    from toolkit.model.generator import GeneratorConfig, ParameterGenerator
    from toolkit.model.slots import slot_specs
    from toolkit.training.runs import run_config, save_run
    from toolkit.training.steps import context_dim
    from toolkit.tasks.recommendation.task import RecommendationTask, RecTaskConfig
    from toolkit.training.train import TrainConfig

    task = RecommendationTask(RecTaskConfig(protocol=SequenceProtocol(max_users=12, max_len=8, eval_negatives=9),
                                            embed_dim=8, context_items=10), CACHE)
    base, duet = task.build_model(), task.build_model()
    config = GeneratorConfig(context_dim=context_dim(task, duet))
    path = tmp_path_factory.mktemp("run") / "tiny"
    save_run(path, run_config(task, duet, config, TrainConfig()), base, duet,
             ParameterGenerator(config, slot_specs(duet)))
    return path


@pytest.fixture(scope="module")
def run(tiny_run):
    from toolkit.training.runs import load_run

    return load_run(tiny_run, CACHE)


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory) -> tuple[Path, dict]:
    from toolkit.exporting.transaction import export_run

    out = tmp_path_factory.mktemp("exports") / "tiny"
    return out, export_run(run, target_names(), QUICK, out)


def test_export_writes_every_target_a_valid_manifest_and_a_report(exported):
    out, report = exported
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.mlpackage", "model.pte", "model.tflite",
                                                      "report.json"]
    manifest = load_manifest(out)
    assert list(manifest["targets"]) == target_names()
    for name, entry in manifest["targets"].items():
        assert (entry["bytes"], entry["sha256"]) == served_digest(out / entry["file"])
        assert len(entry["input_names"]) == len(manifest["call_signature"])
        assert entry["validation"]["parity"]["slot_sets"] == 4  # three devices' generated slots and a probe
    assert manifest["call_signature"] == ["history", "candidates", "head.0.weight", "head.0.bias", "head.1.weight",
                                          "head.1.bias"]
    assert manifest["inputs"][0]["shape"] == [1, 8] and manifest["output"]["shape"] == [1, 10]
    assert manifest["quantization"]["mode"] == "none"
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report))


def test_report_puts_runtime_uauc_next_to_pytorch_and_times_both(exported):
    _, report = exported
    assert report["metric"] == "uauc"
    for name, result in report["targets"].items():
        assert result["uauc"]["pytorch_fp32"] == report["pytorch_fp32"]["uauc"]
        assert abs(result["uauc"]["drop"]) <= MAX_METRIC_DROP
        assert result["max_abs_diff_vs_pytorch_fp32"] <= 1e-4  # fp32: every test call, not only the parity inputs
        assert result["test_devices"] == 4 and result["test_calls"] > 4
        assert result["latency"]["pytorch_eager_p50_us"] > 0
        if name == "coreml" and sys.platform != "darwin":  # the numpy evaluator's speed would mean nothing
            assert result["latency"]["runtime_p50_us"] is None
            assert "not timed" in result["latency"]["measured_with"]
        else:
            assert result["latency"]["runtime_p50_us"] > 0


def test_cli_report_exports_prints_one_row_per_target_from_report_json(exported):
    from click.testing import CliRunner

    import cli

    out, report = exported
    result = CliRunner().invoke(cli.cli, ["report", "--exports", str(out)])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith(f"| {out.name} |")]
    assert [row.split("|")[2].strip() for row in rows] == list(report["targets"])
    tflite = next(row for row in rows if "| tflite |" in row).split("|")
    assert tflite[4].strip() == str(round(report["targets"]["tflite"]["bytes"] / 1024))
    assert tflite[6].strip() == f"{report['targets']['tflite']['uauc']['runtime']:.4f}"


def test_reexport_replaces_the_previous_one_and_leaves_nothing_behind(run, exported, tmp_path):
    import shutil

    from toolkit.exporting.transaction import export_run

    out = tmp_path / "again"
    shutil.copytree(exported[0], out)
    export_run(run, ["tflite"], QUICK, out)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.tflite", "report.json"]
    assert list(load_manifest(out)["targets"]) == ["tflite"]
    assert [p.name for p in tmp_path.iterdir()] == ["again"]  # no partial or old directories


def test_a_failed_export_leaves_the_previous_one_intact(run, exported, tmp_path):
    import shutil

    from toolkit.exporting.transaction import export_run

    out = tmp_path / "kept"
    shutil.copytree(exported[0], out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(InputShapeError, match=r"input 'candidates' should have shape \[1, 50\], got \[1, 10\]"):
        export_run(run, target_names(), ExportOptions(quantize="none", shape=(("candidates", 50),)), out)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]


def test_a_directory_that_is_not_an_export_is_not_replaced(run, tmp_path):
    from toolkit.exporting.transaction import export_run

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not an export directory"):
        export_run(run, ["tflite"], QUICK, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_unknown_shape_and_target_names_are_refused(run, tmp_path):
    from toolkit.exporting.transaction import export_run

    with pytest.raises(ConfigError, match="unknown export shape 'width'; this task's shapes are seq_len, candidates"):
        export_run(run, ["tflite"], ExportOptions(shape=(("width", 3),)), tmp_path / "x")
    with pytest.raises(ConfigError, match="unknown export target 'onnx'"):
        export_run(run, ["onnx"], QUICK, tmp_path / "x")


# -- the command line ----------------------------------------------------------------------------------------------
def test_cli_export_writes_the_files_and_prints_one_line_per_target(tiny_run, tmp_path):
    from click.testing import CliRunner

    from cli import cli

    out = tmp_path / "cli"
    result = CliRunner().invoke(cli, ["export", str(tiny_run), "--target", "tflite", "--target", "coreml",
                                      "--quantize", "none", "--out", str(out), "--max-eval-devices", "3",
                                      "--latency-calls", "10", "--cache-dir", str(CACHE)])
    assert result.exit_code == 0, result.output
    assert "tflite: model.tflite" in result.output and "coreml: model.mlpackage" in result.output
    assert f"wrote {out}" in result.output
    assert list(load_manifest(out)["targets"]) == ["tflite", "coreml"]


def test_cli_export_reports_user_errors_without_a_traceback(tiny_run, tmp_path):
    from click.testing import CliRunner

    from cli import cli

    result = CliRunner().invoke(cli, ["export", str(tiny_run), "--out", str(tmp_path / "x"), "--shape", "candidates=50",
                                      "--cache-dir", str(CACHE)])
    assert result.exit_code == 2
    assert "error: input 'candidates' should have shape [1, 50]" in result.output
    result = CliRunner().invoke(cli, ["export", str(tiny_run), "--out", str(tmp_path / "x"), "--target", "onnx"])
    assert result.exit_code == 2 and "'onnx' is not one of" in result.output


# -- the manifest schema ----------------------------------------------------------------------------------------------
def test_the_written_manifest_is_valid_and_each_break_is_named(exported):
    manifest = load_manifest(exported[0])
    validate_manifest(manifest)

    def broken(edit):
        copy_ = copy.deepcopy(manifest)
        edit(copy_)
        return copy_

    cases = [
        (lambda m: m["targets"]["tflite"].pop("sha256"), r"targets/tflite: 'sha256' is a required property"),
        (lambda m: m["targets"]["coreml"].update(sha256="xyz"), r"targets/coreml/sha256: 'xyz' does not match"),
        (lambda m: m["targets"]["executorch"].update(input_names="args"), r"input_names: 'args' is not of type"),
        (lambda m: m["targets"]["executorch"].update(speed="fast"), r"Additional properties are not allowed"),
        (lambda m: m["targets"]["tflite"]["input_names"].pop(), r"input_names has 5 names for the 6 arguments"),
        (lambda m: m["slots"][1].update(offset=4), r"slot 'head.0.bias' should sit at byte \d+"),
        (lambda m: m["quantization"].update(mode="int4"), r"quantization/mode: 'int4' is not one of"),
        (lambda m: m.update(call_signature=list(reversed(m["call_signature"]))), r"call_signature .* should be inputs"),
    ]
    for edit, message in cases:
        with pytest.raises(ManifestError, match=message):
            validate_manifest(broken(edit))


def test_loading_a_missing_or_corrupt_manifest_says_what_is_wrong(tmp_path):
    with pytest.raises(ManifestError, match="no manifest here"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not readable JSON"):
        load_manifest(tmp_path)


def test_work_directories_of_killed_exports_are_removed_and_a_live_ones_kept(run, tmp_path):
    import subprocess
    import sys

    from toolkit.exporting.transaction import export_run

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = tmp_path / f".out[1].partial-{gone.stdout.strip()}-abcd"  # that process has exited
    older = tmp_path / ".out[1].partial-abcd"  # left before work directories named their process
    working = tmp_path / f".out[1].partial-{os.getppid()}-abcd"  # a live process: another export still writing
    other = tmp_path / ".out1.partial-abcd"  # another export's, which the unescaped pattern ".out[1]..." matches
    for path in (killed, older, working, other):
        path.mkdir()
    export_run(run, ["tflite"], QUICK, tmp_path / "out[1]")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([working.name, other.name, "out[1]"])
