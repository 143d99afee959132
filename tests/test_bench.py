"""`cli.py bench`: benchmark records, the host measurement of a run and its export, merging the apps' results files,
and the phone path through an `adb` stand-in (there is no phone on these machines: what the stand-in returns is
recorded input of the test, written in the formats the app and the tools print, not a phone's measurement)."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli import cli
from service_fixtures import CACHE
from toolkit.model.slots import base_slots, slot_specs
from toolkit.bench import records as R
from toolkit.bench.phone import PhoneError, parse_benchmark_model, parse_executor_runner
from toolkit.errors import DataFormatError

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())
RESULTS = GOLDEN / EXPECTED["benchmark_results"]["file"]
QUICK = ["--calls", "30", "--warmup", "3", "--batch-sizes", "1,4", "--cache-dir", str(CACHE)]
PNG = b"\x89PNG\r\n\x1a\n"

# executor_runner's log lines as its source prints them (ET_LOG: "Model loaded in %f ms.", "Iteration %u of %u: %f
# ms", "Model executed successfully %u time(s) in %f ms.")
EXECUTOR_RUNNER_OUTPUT = """\
I 00:00:00.001000 executorch:executor_runner.cpp:190] Model file /data/local/tmp/duet/model.pte is loaded.
I 00:00:00.004100 executorch:executor_runner.cpp:290] Model loaded in 3.100000 ms.
I 00:00:00.004500 executorch:executor_runner.cpp:410] Iteration 1 of 4: 0.500000 ms
I 00:00:00.005000 executorch:executor_runner.cpp:410] Iteration 2 of 4: 0.300000 ms
I 00:00:00.005300 executorch:executor_runner.cpp:410] Iteration 3 of 4: 0.200000 ms
I 00:00:00.005500 executorch:executor_runner.cpp:410] Iteration 4 of 4: 0.400000 ms
I 00:00:00.005600 executorch:executor_runner.cpp:420] Model executed successfully 4 time(s) in 1.400000 ms.
"""
# benchmark_model's summary lines as LiteRT's tool prints them
BENCHMARK_MODEL_OUTPUT = """\
INFO: Initialized TensorFlow Lite runtime.
INFO: count=10 first=812 curr=240 min=231 max=812 avg=301.5 std=170
INFO: count=50 first=238 curr=236 min=229 max=260 avg=236.25 std=5
INFO: Inference timings in us: Init: 4250, First inference: 812, Warmup (avg): 301.5, Inference (avg): 236.25
INFO: Memory footprint delta from the start of the tool (MB): init=2.5 overall=6.75
INFO: Overall peak memory footprint (MB) via periodic monitoring: 31.5
"""


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def values(report: dict, device: str, backend: str, name: str = "model") -> dict[str, float]:
    return {r["metric"]: r["actualValue"] for r in report["records"] if r["deviceInfo"]["device"] == device
            and r["benchmarkModel"]["backend"] == backend and r["benchmarkModel"]["name"] == name}


def test_latency_statistics_are_the_golden_ones():
    stats = EXPECTED["stats"]
    ours = R.LatencyStats.of(stats["samples_ms"])
    for name in ("avg", "trimmean", "p50", "p90", "p99"):
        assert getattr(ours, name) == stats[name], name  # to the last bit, as the Kotlin core


def test_the_golden_results_file_is_what_the_record_writer_writes():
    entry = EXPECTED["benchmark_results"]
    model, device = R.BenchmarkModel(**entry["model"]), R.DeviceInfo(**entry["device"])
    scenario = next(s for s in EXPECTED["sampling"] if s["name"] == entry["scenario"])
    latency = R.LatencyStats.of(scenario["script"]["forward_ms"][scenario["num_warm_up_iter"]:][:scenario["num_iter"]])
    records = latency.records(model, device)  # the writer's statistics of the scenario's timed calls
    records += [R.Record(model, r["metric"], r["value"], device) for r in scenario["records"][len(records):]]
    assert R.read_results(RESULTS) == records
    assert json.loads(RESULTS.read_text()) == R.records_json(records)


def test_a_failure_record_keeps_its_error_and_a_bad_one_is_refused(tmp_path):
    model, device = R.BenchmarkModel("model", "xnnpack", "int8"), R.host_device()
    failed = R.Record(model, R.BENCHMARK_FAILED, 1.0, device, error="slot_swap: blob: corrupted in transit")
    (tmp_path / "r.json").write_text(json.dumps(R.records_json([failed])))
    assert R.read_results(tmp_path / "r.json") == [failed]
    assert "error" not in R.Record(model, R.AVG, 1.0, device).to_json()
    (tmp_path / "r.json").write_text(json.dumps([{**failed.to_json(), "error": 3}]))
    with pytest.raises(DataFormatError, match="record 0: 'error' must be text"):
        R.read_results(tmp_path / "r.json")


def test_a_record_that_is_not_finite_is_left_out():
    model, device = R.BenchmarkModel("m", "litert", "none"), R.host_device()
    assert R.record(model, R.AVG, float("nan"), device) == [] and R.record(model, R.AVG, float("inf"), device) == []
    assert len(R.record(model, R.AVG, 1.5, device)) == 1


def test_import_merges_an_app_results_file_into_a_report(tmp_path):
    out = tmp_path / "report"
    result = run_cli("bench", "--import", str(RESULTS), "--out", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert len(report["records"]) == len(json.loads(RESULTS.read_text())) == 12
    phone = values(report, "google", "xnnpack")
    assert phone["p50_inference_latency(ms)"] == pytest.approx(EXPECTED["stats"]["p50"])
    markdown = (out / "report.md").read_text()
    p50 = f"{EXPECTED['stats']['p50']:,.3f}"
    assert f"| google | model | xnnpack | int8 | {p50} |" in markdown
    assert "| 15.1 |" in markdown  # the generate round trip column, only phones have it
    assert (out / "latency.png").read_bytes()[:8] == PNG
    again = run_cli("bench", "--import", str(RESULTS), "--out", str(out))  # merged into the report already there
    assert again.exit_code == 0, again.output
    report = json.loads((out / "report.json").read_text())
    assert len(report["records"]) == 12 and [s["records"] for s in report["sources"]] == [12, 0]


def test_imported_names_cannot_break_the_reports_tables(tmp_path):
    records = json.loads(RESULTS.read_text())
    for record in records:
        record["deviceInfo"]["device"] = "Pixel 8\n| evil | row |\r\x1b[31m"
        record["benchmarkModel"]["backend"] = "xnn|pack"
    hostile = tmp_path / "hostile.json"
    hostile.write_text(json.dumps(records))
    out = tmp_path / "report"
    assert run_cli("bench", "--import", str(hostile), "--out", str(out)).exit_code == 0
    programs = (out / "report.md").read_text().split("## Programs")[1].split("## ")[0]
    rows = [line for line in programs.splitlines() if line.startswith("|")]
    assert all(line.endswith("|") and "\x1b" not in line for line in rows)
    assert len({line.replace("\\|", "").count("|") for line in rows}) == 1  # every row has the header's columns
    assert any("| Pixel 8 \\| evil \\| row \\| [31m | model | xnn\\|pack | int8 |" in line for line in rows), rows


@pytest.mark.parametrize("content, says", [
    ("{not json", "not readable JSON"),
    ('{"records": 3}', "a JSON array of records"),
    ("[" + "1" * 5000 + "]", "Exceeds the limit"),  # Python's int parser refuses 4,300+ digits
    ('[{"actualValue": NaN}]', "NaN is not a number JSON allows"),
    ('[{"benchmarkModel": {"name": "m", "backend": "x", "quantization": "int8"}, "metric": "p50", '
     '"actualValue": "fast", "deviceInfo": {"device": "d", "arch": "a", "os": "o"}}]', "record 0: 'actualValue'"),
    ('[{"metric": "p50", "actualValue": 1.0, "deviceInfo": {}}]', "record 0: 'benchmarkModel' must be an object"),
    ('[{"benchmarkModel": {"name": "m", "backend": "x", "quantization": 8}, "metric": "p50", "actualValue": 1, '
     '"deviceInfo": {"device": "d", "arch": "a", "os": "o"}}]', "'quantization' must be text"),
])
def test_a_bad_results_file_is_refused_and_the_report_kept(tmp_path, content, says):
    out = tmp_path / "report"
    assert run_cli("bench", "--import", str(RESULTS), "--out", str(out)).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = run_cli("bench", "--import", str(bad), "--out", str(out))
    assert result.exit_code == 2 and says in result.output and str(bad) in result.output, result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_bench_says_what_it_needs(tmp_path, svc_export):
    result = run_cli("bench", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "nothing to do" in result.output
    result = run_cli("bench", "--exports", str(svc_export), "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "give its RUN_DIR too" in result.output
    assert not (tmp_path / "r").exists()


def test_host_benchmark_of_a_run_and_its_export(tmp_path, svc_run, svc_export):
    out = tmp_path / "report"
    result = run_cli("bench", str(svc_run), "--exports", str(svc_export), "--out", str(out), *QUICK)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    host = report["host"]["device"]
    assert host.startswith("host: ") and report["config"]["calls"] == 30
    manifest = json.loads((svc_export / "manifest.json").read_text())
    for backend, file in (("pytorch", None), ("xnnpack", "model.pte"), ("litert", "model.tflite")):
        got = values(report, host, backend)
        assert {R.AVG, R.TRIMMEAN, R.P50, R.P90, R.P99, R.MODEL_LOAD, R.LOAD_STATUS, R.RAM_PSS, R.RAM_PSS_PEAK,
                R.RAM_PSS_MODEL, R.MODEL_SIZE, R.SLOT_SWAP, R.EAGER_RATIO} <= set(got), backend
        assert 0 < got[R.P50] <= got[R.P90] <= got[R.P99] and got[R.MODEL_LOAD] > 0 and got[R.RAM_PSS_PEAK] > 50
        assert got[R.RAM_PSS] < got[R.RAM_PSS_PEAK]  # minibench's: after the calls minus before the load
        assert got[R.SLOT_SWAP] > 0 and got[R.LOAD_STATUS] == 0
        if file:
            assert got[R.MODEL_SIZE] == pytest.approx((svc_export / file).stat().st_size / 1024)
            assert got[R.EAGER_RATIO] == pytest.approx(got[R.P50] / values(report, host, "pytorch")[R.P50])
            assert {r["benchmarkModel"]["quantization"] for r in report["records"]
                    if r["benchmarkModel"]["backend"] == backend} == {manifest["quantization"]["mode"]}
        else:
            assert got[R.EAGER_RATIO] == 1.0
    generator = values(report, host, "pytorch", "generator")
    assert generator[R.throughput_metric(1)] > 0 and generator[R.throughput_metric(4)] > 0
    assert generator[R.GENERATE_LATENCY] > 0
    uauc = [r for r in report["records"] if r["metric"] == "accuracy_uauc"]
    export_report = json.loads((svc_export / "report.json").read_text())
    assert sorted(r["actualValue"] for r in uauc) == sorted(t["uauc"]["runtime"]
                                                            for t in export_report["targets"].values())
    markdown = (out / "report.md").read_text()
    assert "## Programs" in markdown and "## Generator" in markdown and "## Accuracy" in markdown
    programs = markdown.split("## Programs")[1].split("## ")[0]
    assert sum(line.startswith(f"| {host} | model |") for line in programs.splitlines()) == 3
    for png in ("latency.png", "throughput.png", "accuracy.png"):
        assert (out / png).read_bytes()[:8] == PNG and f"]({png})" in markdown


def test_an_export_of_another_run_is_refused(tmp_path, svc_run, svc_export):
    import shutil

    other = tmp_path / "other-export"
    shutil.copytree(svc_export, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["run"]["config_sha256"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    result = run_cli("bench", str(svc_run), "--exports", str(other), "--out", str(tmp_path / "r"), *QUICK)
    assert result.exit_code == 2 and "exported from another run" in result.output, result.output


@pytest.fixture
def adb_standin(tmp_path, monkeypatch):
    """`adb` on PATH is the stand-in (tests/adb_standin.py); returns its state directory."""
    state, bin_dir = tmp_path / "adb-state", tmp_path / "bin"
    state.mkdir()
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(f"#!/bin/sh\nexec {sys.executable} {HERE / 'adb_standin.py'} \"$@\"\n")
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("ADB_STANDIN", str(state))
    (state / "results.json").write_text(RESULTS.read_text())
    (state / "executor_runner.txt").write_text(EXECUTOR_RUNNER_OUTPUT)
    (state / "benchmark_model.txt").write_text(BENCHMARK_MODEL_OUTPUT)
    return state


def calls(state: Path) -> list[list[str]]:
    return [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]


def test_the_phone_benchmark_over_adb(tmp_path, adb_standin, svc_run, svc_export, monkeypatch):
    (adb_standin / "devices.txt").write_text("emulator-5554\tdevice\n")
    monkeypatch.setattr("toolkit.bench.phone.time.sleep", lambda seconds: None)
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("executor_runner", "benchmark_model"):
        (tools / tool).write_bytes(b"\x7fELF stand-in")
    out = tmp_path / "report"
    result = run_cli("bench", str(svc_run), "--exports", str(svc_export), "--out", str(out), "--no-host",
                     "--adb", "emulator-5554", "--executor-runner", str(tools / "executor_runner"),
                     "--benchmark-model", str(tools / "benchmark_model"), "--cache-dir", str(CACHE))
    assert result.exit_code == 0, result.output
    made = calls(adb_standin)
    assert made[0] == ["devices"] and all(c == ["devices"] or c[:2] == ["-s", "emulator-5554"] for c in made)
    made = [c for c in made if c != ["devices"]]
    remote = "/data/local/tmp/duet"
    pushed = {c[4] for c in made if c[2] == "push"}
    assert {f"{remote}/{f}" for f in ("manifest.json", "model.pte", "model.tflite", "base.safetensors",
                                      "request.json", "executor_runner", "benchmark_model")} == pushed
    shell = [c[3] for c in made if c[2] == "shell"]
    assert (f"am start -S -W -n io.duet.demo/.BenchmarkActivity --es model_dir {remote} --ei num_iter 50 "
            f"--ei num_warm_up_iter 10 --ei num_threads 1 --es target executorch") in shell
    assert shell.index("run-as io.duet.demo rm -f files/benchmark_results.json") < \
        shell.index(next(s for s in shell if s.startswith("am start")))
    assert sum(s == "run-as io.duet.demo cat files/benchmark_results.json" for s in shell) == 2  # waited once
    assert (f"{remote}/executor_runner --model_path {remote}/model.pte --num_executions 50 --cpu_threads 1 "
            f"--print_output none") in shell
    assert any(s.startswith(f"{remote}/benchmark_model --graph={remote}/model.tflite --num_threads=1 "
                            f"--num_runs=50 --warmup_runs=10") for s in shell)

    # what was pushed is what the app's offline model_dir reads: Base's slots as GET /v1/slots/base serves them
    from toolkit.client import check_answer, SlotAnswer
    from toolkit.training.runs import load_run
    from toolkit.protocol.slots import sha256_hex

    phone = adb_standin / "phone" / remote.lstrip("/")
    manifest = json.loads((phone / "manifest.json").read_text())
    blob = (phone / "base.safetensors").read_bytes()
    slots = check_answer(SlotAnswer(blob, sha256_hex(blob), manifest["model_version"]), manifest)
    run = load_run(svc_run, CACHE)
    for spec, param in zip(slot_specs(run.duet), base_slots(run.duet)):
        np.testing.assert_array_equal(slots[spec.name], param.detach().numpy())
    assert (phone / "model.pte").read_bytes() == (svc_export / "model.pte").read_bytes()
    assert set(json.loads((phone / "request.json").read_text())) >= {"device_id"}

    report = json.loads((out / "report.json").read_text())
    app = values(report, "google", "xnnpack")
    assert app[R.P50] == pytest.approx(EXPECTED["stats"]["p50"]) and app[R.GENERATE_ROUND_TRIP] == 15.125
    by_model = {}
    for r in report["records"]:
        by_model.setdefault(r["benchmarkModel"]["name"], {})[r["metric"]] = r["actualValue"]
    assert by_model["model (executor_runner)"][R.P50] == pytest.approx(0.35)
    assert by_model["model (executor_runner)"][R.MODEL_LOAD] == pytest.approx(3.1)
    assert by_model["model (benchmark_model)"][R.AVG] == pytest.approx(0.23625)
    assert by_model["model (benchmark_model)"][R.FOOTPRINT_TOOL_PEAK] == pytest.approx(31.5)
    assert (out / "phone-emulator-5554-benchmark_results.json").read_text().strip() == RESULTS.read_text().strip()
    assert not any(r["deviceInfo"]["device"].startswith("host:") and r["metric"] == R.P50 for r in report["records"])


def test_no_phone_attached_fails_before_anything_is_measured(tmp_path, adb_standin, svc_run, svc_export):
    (adb_standin / "devices.txt").write_text("R58M123\tunauthorized\n")
    out = tmp_path / "report"
    result = run_cli("bench", str(svc_run), "--exports", str(svc_export), "--out", str(out), "--adb", "emulator-5554",
                     "--cache-dir", str(CACHE))
    assert result.exit_code == 2 and "emulator-5554 is not attached" in result.output
    assert "R58M123 (unauthorized)" in result.output and not out.exists()
    assert calls(adb_standin) == [["devices"]]
    result = run_cli("bench", str(svc_run), "--exports", str(svc_export), "--out", str(out), "--adb", "R58M123",
                     "--cache-dir", str(CACHE))
    assert result.exit_code == 2 and "R58M123 is unauthorized" in result.output


def test_no_adb_on_path_is_said(tmp_path, monkeypatch, svc_run, svc_export):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = run_cli("bench", str(svc_run), "--exports", str(svc_export), "--out", str(tmp_path / "r"),
                     "--adb", "emulator-5554", "--cache-dir", str(CACHE))
    assert result.exit_code == 2 and "adb not found on PATH" in result.output


def test_tool_output_parsing():
    model, device = R.BenchmarkModel("model", "xnnpack", "int8"), R.host_device()
    got = {r.metric: r.value for r in parse_executor_runner(EXECUTOR_RUNNER_OUTPUT, model, device)}
    assert got[R.MODEL_LOAD] == pytest.approx(3.1) and got[R.AVG] == pytest.approx(0.35)
    assert got[R.P50] == pytest.approx(0.35) and got[R.P99] == pytest.approx(np.percentile([.5, .3, .2, .4], 99))
    only_total = "\n".join(l for l in EXECUTOR_RUNNER_OUTPUT.splitlines() if "Iteration" not in l)
    got = {r.metric: r.value for r in parse_executor_runner(only_total, model, device)}
    assert got[R.AVG] == pytest.approx(0.35) and R.P50 not in got
    got = {r.metric: r.value for r in parse_benchmark_model(BENCHMARK_MODEL_OUTPUT, model, device)}
    assert got == {R.MODEL_LOAD: 4.25, R.AVG: 0.23625, R.FOOTPRINT_TOOL_PEAK: 31.5, R.FOOTPRINT_TOOL_DELTA: 6.75,
                   R.LOAD_STATUS: 0.0}  # its footprints are not PSS: never under ram_pss_usage(mb)
    no_peak = BENCHMARK_MODEL_OUTPUT.replace("Overall peak", "Overall")
    got = {r.metric: r.value for r in parse_benchmark_model(no_peak, model, device)}
    assert got[R.FOOTPRINT_TOOL_DELTA] == 6.75 and R.FOOTPRINT_TOOL_PEAK not in got and R.RAM_PSS not in got
    with pytest.raises(PhoneError, match="no 'Model executed successfully"):
        parse_executor_runner("E 00:00:00.1 executorch: Loading of method forward failed with status 0x12", model, device)
    with pytest.raises(PhoneError, match="no 'Inference timings in us"):
        parse_benchmark_model("ERROR: Failed to apply XNNPACK delegate.\nBenchmarking failed.", model, device)


def _failure_records(*failures: tuple[str, float, str]) -> str:
    """A results file as the app writes it when something failed: minibench's load records, failure records."""
    model, device = EXPECTED["benchmark_results"]["model"], EXPECTED["benchmark_results"]["device"]
    out = []
    for metric, value, error in failures:
        out.append({"benchmarkModel": model, "metric": metric, "actualValue": value, "targetValue": 0,
                    "deviceInfo": device, **({"error": error} if error else {})})
    return json.dumps(out)


BROUGHT_TO_FRONT = ("Starting: Intent { cmp=io.duet.demo/.BenchmarkActivity (has extras) }\n"
                    "Warning: Activity not started, its current task has been brought to the front\nStatus: ok\n"
                    "LaunchState: UNKNOWN (0)\nActivity: io.duet.demo/.BenchmarkActivity\nComplete")
NOT_INSTALLED = ("Starting: Intent { cmp=io.duet.demo/.BenchmarkActivity (has extras) }\n"
                 "Error type 3\nError: Activity class {io.duet.demo/io.duet.demo.BenchmarkActivity} does not exist.")


@pytest.mark.parametrize("setup, says", [
    ({"am_start.txt": BROUGHT_TO_FRONT}, "was not started anew (Warning: Activity not started, its current task has "
                                         "been brought to the front): an earlier run is still open"),
    ({"am_start.txt": NOT_INSTALLED}, "did not start: Error: Activity class {io.duet.demo/io.duet.demo.Benchmark"
                                      "Activity} does not exist. (it exists only in debug builds"),
    ({"results.json": _failure_records(("model_load_time(ms)", 3.25, ""), ("load_status", 35.0, ""),
                                       ("benchmark_failed", 1.0, "load: [ExecuTorch Error 0x23] Invalid program"))},
     "the app's benchmark failed: load_status 35; load: [ExecuTorch Error 0x23] Invalid program (its records: "),
    ({"results.json": _failure_records(("benchmark_failed", 1.0, "options: num_iter must be at least 1, got 0"))},
     "the app's benchmark failed: options: num_iter must be at least 1, got 0"),
    ({"alive_polls": "1"}, "the app ended without writing files/benchmark_results.json (a crash: `adb logcat -s "
                           "DuetBenchmark AndroidRuntime` says why)"),
], ids=["re-run brought to the front", "release build or not installed", "load fails", "bad options",
        "no results file"])
def test_each_way_the_phone_run_fails_is_one_line_within_seconds(tmp_path, adb_standin, svc_run, svc_export, setup,
                                                                  says):
    import time

    (adb_standin / "devices.txt").write_text("emulator-5554\tdevice\n")
    (adb_standin / "results.json").unlink()
    for name, content in setup.items():
        (adb_standin / name).write_text(content)
    started = time.monotonic()
    result = run_cli("bench", str(svc_run), "--exports", str(svc_export), "--out", str(tmp_path / "r"), "--no-host",
                     "--adb", "emulator-5554", "--cache-dir", str(CACHE))
    elapsed = time.monotonic() - started
    assert result.exit_code == 2 and says in result.output, result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1, result.output
    assert elapsed < 15, f"took {elapsed:.1f} s"  # polls once a second: no --phone-timeout wait
    shell = [c[3] for c in calls(adb_standin) if len(c) > 3 and c[2] == "shell"]
    assert sum(s.startswith("am start -S -W ") for s in shell) == 1
