"""`cli.py evaluate --refresh-every K` / `--refresh trigger --budget B` on a real tiny run, the files they write, and
`cli.py report --refresh` and `cli.py bench`'s curve of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.cli.commands import cli
from toolkit.protocol.trigger import TriggerConfig

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "duet"
PNG = b"\x89PNG\r\n\x1a\n"
SMALL = ["--finetune-epochs", "1", "--cache-dir", str(CACHE)]


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    """A real run on 8 MovieLens users, one epoch, evaluated once (the default protocol)."""
    run = tmp_path_factory.mktemp("refresh") / "run"
    subprocess.run([sys.executable, str(REPO / "cli.py"), "--threads", "1", "train", "--out", str(run), "--max-users",
                    "8", "--max-epochs", "1", "--cache-dir", str(CACHE)], check=True, cwd=REPO, capture_output=True)
    result = run_cli("evaluate", str(run), *SMALL)
    assert result.exit_code == 0, result.output
    return run


def test_periodic_refresh_writes_its_setting_beside_the_default_evaluation(evaluated):
    before = (evaluated / "metrics.json").read_bytes()
    result = run_cli("evaluate", str(evaluated), "--refresh-every", "3", *SMALL)
    assert result.exit_code == 0, result.output
    assert (evaluated / "metrics.json").read_bytes() == before  # the default protocol's files are not touched
    entry = json.loads((evaluated / "refresh.json").read_text())["settings"]["every-3"]
    assert set(entry["metrics"]) == {"base", "duet", "finetune"} and entry["refresh"]["refresh_every"] == "3"
    samples, devices = entry["samples"], entry["devices"]
    for method in ("duet", "finetune"):
        cost = entry["cost"][method]
        assert devices < cost["requests_per_device"] * devices < samples  # more than one each, fewer than one per sample
        assert cost["seconds_per_device"] > 0
    assert entry["cost"]["duet"]["requests_per_device"] == entry["cost"]["finetune"]["requests_per_device"]
    assert set(entry["per_device"]["duet"]) == set(json.loads((evaluated / "evaluation.json").read_text())
                                                   ["per_device"]["duet"])
    assert "every-3" in result.output and "requests/device" in result.output


def test_trigger_refresh_chooses_a_threshold_and_writes_the_configuration_a_device_runs(evaluated):
    result = run_cli("evaluate", str(evaluated), "--refresh", "trigger", "--budget", "10", "--trigger-window", "3",
                     "--trigger-score", "window", *SMALL)
    assert result.exit_code == 0, result.output
    entry = json.loads((evaluated / "refresh.json").read_text())["settings"]["trigger-window-w3-b10"]
    assert entry["trigger"]["validation_refreshes_per_100"] <= 10 and "finetune" not in entry["metrics"]
    config = TriggerConfig.parse((evaluated / "trigger.json").read_text())
    assert config == TriggerConfig("window", 3, entry["trigger"]["threshold"], 10.0)


@pytest.mark.parametrize("args, message", [
    (["--refresh-every", "0"], "'once' or a whole number"),
    (["--refresh", "trigger"], "needs --budget"),
    (["--budget", "5"], "--budget goes with --refresh trigger"),
])
def test_contradictory_refresh_options_are_one_line_errors(evaluated, args, message):
    result = CliRunner().invoke(cli, ["evaluate", str(evaluated), *args, *SMALL])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_report_and_bench_show_the_metric_against_requests(evaluated, tmp_path):
    run_cli("evaluate", str(evaluated), "--refresh-every", "2", "--no-finetune-refresh", *SMALL)
    plot = tmp_path / "curve.png"
    result = run_cli("report", "--refresh", "--plot", str(plot), str(evaluated))
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines()[2:] if line.startswith(f"| {evaluated.name} |")]
    settings = [row.split(" | ")[1] for row in rows]
    assert settings[:3] == ["—", "once", "once"] and "every-2" in settings
    assert plot.read_bytes()[:8] == PNG
    from service_fixtures import export_tiny

    out, export = tmp_path / "bench", export_tiny(evaluated, tmp_path / "export")
    result = run_cli("bench", str(evaluated), "--exports", str(export), "--no-host", "--out", str(out),
                     "--cache-dir", str(CACHE))
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["plots"]["refresh"] == "refresh.png" and (out / "refresh.png").read_bytes()[:8] == PNG
    assert [p[2] for p in sorted(report["refresh"]["periodic"]["duet"])][0] == "once"


def test_the_image_tasks_drift_reaches_the_task_from_the_command_line(tmp_path):
    # --drift-after 5 is before the end of the 16 context images: the task refuses it, so the option got there
    result = CliRunner().invoke(cli, ["train", "--task", "image", "--drift-after", "5", "--max-epochs", "1",
                                      "--out", str(tmp_path / "run"), "--cache-dir", str(CACHE)])
    assert result.exit_code == 2 and "drift_after must be 0 (no drift) or inside the test period" in result.output
    assert not (tmp_path / "run").exists()


def test_the_refresh_ablation_groups_every_test_device_by_span_and_bounds_the_gain(evaluated):
    from toolkit.evaluation.refresh_ablation import load_recommendation_run, span_table, upper_bound

    run_cli("evaluate", str(evaluated), "--refresh-every", "2", "--no-finetune-refresh", *SMALL)
    run = load_recommendation_run(evaluated, CACHE)
    table = span_table(run).splitlines()
    assert table[0].startswith("| test period spans | devices | base | finetune once | duet once |")
    assert "duet every-2" in table[0] and "every-2 − once" in table[0]
    devices = json.loads((evaluated / "evaluation.json").read_text())["per_device"]["duet"]
    assert sum(int(row.split(" | ")[1]) for row in table[2:]) == len(devices)  # every test device in one group
    bound = upper_bound(run)
    once = json.loads((evaluated / "metrics.json").read_text())["duet"]["uauc"]
    assert bound["duet once"] == pytest.approx(once, abs=1e-9)
    assert 0 <= bound["duet from the end of the test period (leaky)"] <= 1


def test_the_refresh_ablation_says_in_one_line_what_it_cannot_read(tmp_path):
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "toolkit.evaluation.refresh_ablation", str(run)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
