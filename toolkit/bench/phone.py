"""The benchmark on an Android phone over adb: push an export, run the demo app's BenchmarkActivity (and optionally
ExecuTorch's executor_runner or LiteRT's benchmark_model), pull and parse what they report, as benchmark records."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from toolkit.bench import records as R
from toolkit.errors import DuetError, one_line
from toolkit.bench.config import TARGETS_ON_ANDROID, PhoneOptions

APP_PACKAGE = "io.duet.demo"
ACTIVITY = f"{APP_PACKAGE}/.BenchmarkActivity"
RESULTS = "files/benchmark_results.json"  # in the app's data directory (read with run-as)
BASE_BLOB, REQUEST = "base.safetensors", "request.json"  # what the app's ModelDir reads beside manifest.json


class PhoneError(DuetError, RuntimeError):
    """No phone, adb missing or failing, or the app or a tool did not report."""


Runner = Callable[[Sequence[str], float], subprocess.CompletedProcess]


def run_command(args: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


class Adb:
    """adb for one device serial; every call is `adb -s SERIAL ...`, its failures PhoneErrors with adb's words."""

    def __init__(self, serial: str, runner: Runner = run_command, executable: str = "adb"):
        self.serial, self.runner, self.executable = serial, runner, executable

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        try:
            done = self.runner([self.executable, "-s", self.serial, *args], timeout)
        except FileNotFoundError as err:
            raise PhoneError("adb not found on PATH: install Android's platform-tools") from err
        except subprocess.TimeoutExpired as err:
            raise PhoneError(f"adb {' '.join(args[:3])} did not finish within {timeout:.0f} s") from err
        if check and done.returncode != 0:
            said = (done.stderr or done.stdout or "no output").strip().splitlines() or ["no output"]
            raise PhoneError(f"adb {' '.join(args[:3])} failed: {one_line(said[-1], 200)}")
        return done

    def check_attached(self) -> None:
        """PhoneError unless `adb devices` lists the serial as a ready device."""
        try:
            done = self.runner([self.executable, "devices"], 30)
        except FileNotFoundError as err:
            raise PhoneError("adb not found on PATH: install Android's platform-tools") from err
        states = dict(line.split()[:2] for line in done.stdout.splitlines()[1:] if len(line.split()) >= 2)
        if states.get(self.serial) != "device":
            attached = ", ".join(f"{s} ({state})" for s, state in states.items()) or "none"
            found = f" is {states[self.serial]}" if self.serial in states else " is not attached"
            raise PhoneError(f"Android device {self.serial}{found} (adb devices lists: {attached})")

    def shell(self, command: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        return self(*("shell", command), timeout=timeout, check=check)


def app_command(options: PhoneOptions, target: str) -> str:
    """The `am start` line of the app's BenchmarkActivity with its intent extras (android_demo/README.md): `-S`
    stops a running instance first (else a re-run is only brought to the front), `-W` waits until it is launched."""
    extras = [f"--es model_dir {options.remote_dir}", f"--ei num_iter {options.phone_iterations}",
              f"--ei num_warm_up_iter {options.phone_warmup}", f"--ei num_threads {options.phone_threads}",
              f"--es target {target}"]
    return f"am start -S -W -n {ACTIVITY} " + " ".join(extras)


def check_started(output: str) -> None:
    """PhoneError, in one line, unless `am start -W` says it launched the activity anew."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error")]  # "Error type 3", then "Error: <what>"
    error = next((line for line in errors if line.startswith("Error:")), errors[0] if errors else None)
    if error:
        raise PhoneError(f"the app's BenchmarkActivity did not start: {one_line(error, 200)} (it exists only in "
                         f"debug builds: install one with ./gradlew :app:installDebug, see android_demo/README.md)")
    stale = next((line for line in lines if line.startswith("Warning: Activity not started")), None)
    if stale:
        raise PhoneError(f"the app's BenchmarkActivity was not started anew ({one_line(stale, 160)}): an earlier run "
                         f"is still open; stop it with `adb shell am force-stop {APP_PACKAGE}`")
    if "Status: ok" not in lines:
        raise PhoneError(f"am start did not report 'Status: ok': {one_line(output.strip() or 'no output', 200)}")


def app_running(adb: Adb) -> bool:
    """Whether the app's process is alive (`pidof`, in every Android since 7)."""
    done = adb.shell(f"pidof {APP_PACKAGE}", check=False)
    return done.returncode == 0 and bool(done.stdout.strip())


def read_results_text(adb: Adb) -> str | None:
    """The app's results file when it is there and parses as a JSON array, else None."""
    done = adb.shell(f"run-as {APP_PACKAGE} cat {RESULTS}", check=False)
    if done.returncode != 0 or not done.stdout.strip().startswith("["):
        return None
    try:
        json.loads(done.stdout)
    except ValueError:
        return None  # still being written (the app renames a finished file into place; an older app may not)
    return done.stdout


def check_results(records: list[R.Record], copy: Path) -> None:
    """PhoneError naming what failed when the app's records hold a failure: load_status other than 0 (the
    runtime's error code) or failure records (metric benchmark_failed, with the error)."""
    status = next((r.value for r in records if r.metric == R.LOAD_STATUS and r.value != 0), None)
    failures = [r.error or "no message" for r in records if r.metric == R.BENCHMARK_FAILED]
    if status is None and not failures:
        return
    said = (f"load_status {status:g}; " if status is not None else "") + "; ".join(failures)
    raise PhoneError(f"the app's benchmark failed: {one_line(said, 300)} (its records: {copy})")


def phone_target(manifest: dict[str, Any], requested: str | None) -> str:
    if requested:
        if requested not in manifest["targets"]:
            raise PhoneError(f"the export has no {requested} target (it has {', '.join(manifest['targets'])})")
        return requested
    for name in TARGETS_ON_ANDROID:
        if name in manifest["targets"]:
            return name
    raise PhoneError(f"the export has none of the targets the Android app runs ({', '.join(TARGETS_ON_ANDROID)})")


def push_export(adb: Adb, export_dir: Path, manifest: dict[str, Any], staged: dict[str, bytes],
                remote_dir: str) -> None:
    """manifest.json, the Android targets' program files and `staged` (Base's slot blob, a request) to the phone."""
    adb.shell(f"mkdir -p {remote_dir}")
    adb("push", str(export_dir / "manifest.json"), f"{remote_dir}/manifest.json")
    for name in TARGETS_ON_ANDROID:
        if name in manifest["targets"]:
            file = manifest["targets"][name]["file"]
            adb("push", str(export_dir / file), f"{remote_dir}/{file}", timeout=600)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="duet-adb-") as tmp:
        for file, content in staged.items():
            (Path(tmp) / file).write_bytes(content)
            adb("push", str(Path(tmp) / file), f"{remote_dir}/{file}")


def run_app(adb: Adb, options: PhoneOptions, target: str, results_copy: Path,
            sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> list[R.Record]:
    """Start the app's benchmark, wait until its results file parses, keep a copy, return its records. Every way
    it can go wrong is one PhoneError line: not started or only brought to the front, the app gone without a
    results file (seen within a poll), no file after `phone_timeout` s, or a file whose records say it failed."""
    adb.shell(f"run-as {APP_PACKAGE} rm -f {RESULTS}", check=False)
    check_started(adb.shell(app_command(options, target)).stdout)
    deadline = clock() + options.phone_timeout
    while (text := read_results_text(adb)) is None:
        if not app_running(adb) and (text := read_results_text(adb)) is None:  # read again: it may just have ended
            raise PhoneError(f"the app ended without writing {RESULTS} (a crash: `adb logcat -s DuetBenchmark "
                             f"AndroidRuntime` says why)")
        if text is not None:
            break
        if clock() > deadline:
            raise PhoneError(f"the app wrote no {RESULTS} within {options.phone_timeout} s and is still running "
                             f"(--phone-timeout; `adb logcat -s DuetBenchmark` shows its progress)")
        sleep(1.0)
    results_copy.write_text(text)
    records = R.read_results(results_copy)
    check_results(records, results_copy)
    return records


# executor_runner (ExecuTorch examples/portable/executor_runner) logs through ET_LOG, e.g.
# "I 00:00:00.012 executorch:executor_runner.cpp:312] Model loaded in 1.234000 ms."
_ET_LOADED = re.compile(r"Model loaded in ([0-9.]+) ms")
_ET_ITERATION = re.compile(r"Iteration \d+ of \d+: ([0-9.]+) ms")
_ET_TOTAL = re.compile(r"Model executed successfully (\d+) time\(s\) in ([0-9.]+) ms")
# benchmark_model (LiteRT tools/benchmark)
_TFL_TIMINGS = re.compile(r"Inference timings in us: Init: ([0-9.]+), First inference: ([0-9.]+), "
                          r"Warmup \(avg\): ([0-9.e+]+), Inference \(avg\): ([0-9.e+]+)")
_TFL_MEMORY = re.compile(r"Memory footprint delta from the start of the tool \(MB\): init=([0-9.]+) overall=([0-9.]+)")
_TFL_PEAK = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring: ([0-9.]+)")


def parse_executor_runner(output: str, model: R.BenchmarkModel, device: R.DeviceInfo) -> list[R.Record]:
    """Load time, per-iteration latency statistics (or the mean when only the total is printed)."""
    total = _ET_TOTAL.search(output)
    if not total:
        raise PhoneError("executor_runner printed no 'Model executed successfully N time(s) in T ms' line: "
                         + one_line(output.strip().splitlines()[-1] if output.strip() else "no output", 200))
    out: list[R.Record] = []
    loaded = _ET_LOADED.search(output)
    if loaded:
        out += R.record(model, R.MODEL_LOAD, float(loaded.group(1)), device)
    iterations = [float(m) for m in _ET_ITERATION.findall(output)]
    if iterations:
        out += R.LatencyStats.of(iterations).records(model, device)
    else:
        out += R.record(model, R.AVG, float(total.group(2)) / int(total.group(1)), device)
    return out + R.record(model, R.LOAD_STATUS, 0.0, device)


def parse_benchmark_model(output: str, model: R.BenchmarkModel, device: R.DeviceInfo) -> list[R.Record]:
    """Init time, the mean of the timed runs, and benchmark_model's own memory measures (its peak footprint when
    monitored, its overall footprint delta): not PSS, so under their own names."""
    timings = _TFL_TIMINGS.search(output)
    if not timings:
        raise PhoneError("benchmark_model printed no 'Inference timings in us: ...' line: "
                         + one_line(output.strip().splitlines()[-1] if output.strip() else "no output", 200))
    init_us, _first_us, _warmup_us, inference_us = (float(g) for g in timings.groups())
    out = R.record(model, R.MODEL_LOAD, init_us / 1e3, device) + R.record(model, R.AVG, inference_us / 1e3, device)
    peak, memory = _TFL_PEAK.search(output), _TFL_MEMORY.search(output)
    if peak:
        out += R.record(model, R.FOOTPRINT_TOOL_PEAK, float(peak.group(1)), device)
    if memory:
        out += R.record(model, R.FOOTPRINT_TOOL_DELTA, float(memory.group(2)), device)
    return out + R.record(model, R.LOAD_STATUS, 0.0, device)


def phone_device(adb: Adb) -> R.DeviceInfo:
    """The phone as minibench's deviceInfo (device = Build.BRAND, arch = Build.MODEL, os = "Android <release>"),
    from getprop, and memory from /proc/meminfo."""
    def prop(name: str) -> str:
        return adb.shell(f"getprop {name}", check=False).stdout.strip()

    meminfo = adb.shell("cat /proc/meminfo", check=False).stdout
    kib = dict(re.findall(r"^(\w+):\s+(\d+) kB", meminfo, re.M))
    return R.DeviceInfo(prop("ro.product.brand") or adb.serial, prop("ro.product.model"),
                        f"Android {prop('ro.build.version.release')}", int(kib.get("MemTotal", 0)) * 1024,
                        int(kib.get("MemAvailable", 0)) * 1024)


def run_tool(adb: Adb, tool: Path, remote_dir: str, arguments: str, timeout: float) -> str:
    """Push a native tool, make it executable, run it with `arguments`; its stdout and stderr together."""
    if not tool.is_file():
        raise PhoneError(f"{tool}: no such file (build it for the phone's ABI first)")
    remote = f"{remote_dir}/{tool.name}"
    adb("push", str(tool), remote, timeout=600)
    adb.shell(f"chmod +x {remote}")
    done = adb.shell(f"{remote} {arguments}", timeout=timeout, check=False)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise PhoneError(f"{tool.name} failed on the phone (exit {done.returncode}): {one_line(said[-1], 200)}")
    return done.stdout + done.stderr


def phone_records(options: PhoneOptions, export_dir: Path, manifest: dict[str, Any], staged: dict[str, bytes],
                  out_dir: Path, adb: Adb | None = None, sleep: Callable[[float], None] = time.sleep) -> list[R.Record]:
    """Everything measured on the phone `options.adb`; the app's results file is kept in `out_dir`."""
    adb = adb or Adb(options.adb, executable=shutil.which("adb") or "adb")
    adb.check_attached()
    target = phone_target(manifest, options.phone_target)
    push_export(adb, export_dir, manifest, staged, options.remote_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    found = run_app(adb, options, target, out_dir / f"phone-{_safe(options.adb)}-benchmark_results.json", sleep)
    device = found[0].device if found else phone_device(adb)
    quantization = manifest["quantization"]["mode"]
    tools = ((options.executor_runner, "executorch", "executor_runner", parse_executor_runner,
              lambda file: f"--model_path {options.remote_dir}/{file} --num_executions {options.phone_iterations} "
                           f"--cpu_threads {options.phone_threads} --print_output none"),
             (options.benchmark_model, "tflite", "benchmark_model", parse_benchmark_model,
              lambda file: f"--graph={options.remote_dir}/{file} --num_threads={options.phone_threads} "
                           f"--num_runs={options.phone_iterations} --warmup_runs={options.phone_warmup} "
                           f"--report_peak_memory_footprint=true"))
    for path, target_name, tool_name, parse, arguments in tools:
        if not path:
            continue
        if target_name not in manifest["targets"]:
            raise PhoneError(f"--{tool_name.replace('_', '-')} needs the export's {target_name} target")
        file = manifest["targets"][target_name]["file"]
        output = run_tool(adb, Path(path), options.remote_dir, arguments(file), options.phone_timeout)
        (out_dir / f"phone-{_safe(options.adb)}-{tool_name}.txt").write_text(output)
        model = R.BenchmarkModel(f"{Path(file).stem} ({tool_name})", R.BACKENDS[target_name], quantization)
        found += parse(output, model, device)
    return found


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:64]
