"""Measure the data path at MovieLens-25M scale: `python -m toolkit.data.scale --rows 1000000 5000000 25000000`."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from toolkit.data import sequences
from toolkit.tasks.loading import task_class

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "docs" / "measurements" / "data-scale.json"
BATCH_SIZE = 256  # TrainConfig's default batch size
WINDOW_BATCHES = 200  # batches built after the first (each with its history and context windows) to time one
PHASES = ("hash", "load", "build", "cache_write", "cache_read")  # timed inside the task's own data loading


def _peak_gb() -> float:
    """This process's peak resident memory so far (VmHWM), in GB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    raise OSError("no VmHWM in /proc/self/status")


def measure_child(path: Path, cache_dir: Path) -> dict[str, Any]:
    """What a `cli.py train --data PATH --format ml-latest` run does before its first step, phase by phase."""
    from toolkit.tasks.recommendation import task as recommendation

    seconds: dict[str, float] = {}
    peaks: dict[str, float] = {}

    def timed(name: str, function: Callable) -> Callable:
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
                peaks[name] = _peak_gb()
        return run

    # The task loads its data through these names; timing them splits its constructor into phases.
    recommendation.file_fingerprint = timed("hash", recommendation.file_fingerprint)
    recommendation.load_file = timed("load", recommendation.load_file)
    sequences._build = timed("build", sequences._build)
    sequences._save_cache = timed("cache_write", sequences._save_cache)
    sequences._load_cache = timed("cache_read", sequences._load_cache)
    started = time.perf_counter()
    task = task_class("recommendation").from_options(
        {"data_path": str(path), "data_format": "ml-latest", "max_users": 0, "seed": 0}, cache_dir)
    seconds["task"] = time.perf_counter() - started
    peaks["task"] = _peak_gb()
    data = task.data
    rng = np.random.default_rng([0, zlib.crc32(b"base")])  # as toolkit.training.train seeds the Base stage's epochs
    started = time.perf_counter()
    batches = task.batches("train", rng=rng, batch_size=BATCH_SIZE)  # drawn lazily, as fit_stage trains on them
    next(batches, None)  # the first step's batch: the epoch's order, its negatives, history and context windows
    seconds["first_batch"] = time.perf_counter() - started
    peaks["first_batch"] = _peak_gb()
    started = time.perf_counter()
    built = sum(1 for _ in itertools.islice(batches, WINDOW_BATCHES))
    windows_ms = (time.perf_counter() - started) * 1e3 / max(1, built)
    return {
        "users": int(data.n_users), "items": int(data.n_items - 1), "interactions": int(len(data.sequence)),
        "train_samples": int(len(data.splits["train"][0])), "test_samples": int(len(data.splits["test"][0])),
        "batches": -(-len(data.splits["train"][0]) // BATCH_SIZE), "batch_ms": round(windows_ms, 2),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "peak_gb_after": {k: round(v, 2) for k, v in peaks.items()},
    }


def _run(command: list[str]) -> tuple[dict[str, Any] | str, float, float, list[float]]:
    """(the child's last stdout line, parsed when JSON; wall seconds; its peak RSS in GB; load averages before)."""
    load = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=REPO, text=True)
    output = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {child.returncode}")
    last = output.strip().splitlines()[-1] if output.strip() else ""
    try:
        result: dict[str, Any] | str = json.loads(last)
    except json.JSONDecodeError:
        result = last
    return result, wall, usage.ru_maxrss * 1024 / 1e9, load


def measure(rows: int, data_dir: Path, keep_cache: bool) -> dict[str, Any]:
    """Generate (once) a synthetic file of `rows` ratings, then a cold and a warm run of the data path on it."""
    path = data_dir / f"ratings-{rows}.csv"
    entry: dict[str, Any] = {"rows": rows, "file": str(path)}
    if not path.exists():
        summary, wall, peak, load = _run([sys.executable, "-m", "toolkit.data.synthetic", "--rows", str(rows),
                                          "--out", str(path)])
        entry["generate"] = {"seconds": round(wall, 1), "peak_gb": round(peak, 2), "summary": summary, "load": load}
    entry["file_mb"] = round(path.stat().st_size / 1e6, 1)
    cache_dir = data_dir / f"cache-{rows}"
    shutil.rmtree(cache_dir, ignore_errors=True)
    for kind in ("cold", "warm"):  # cold: an empty cache (builds and writes it); warm: reads what cold wrote
        result, wall, peak, load = _run([sys.executable, "-m", "toolkit.data.scale", "--child", str(path),
                                         "--cache-dir", str(cache_dir)])
        entry[kind] = {**result, "wall_seconds": round(wall, 2), "peak_gb": round(peak, 2), "load_before": load}
        print(f"  {rows:>10,} rows {kind}: {wall:.1f} s, peak {peak:.2f} GB (load average {load[0]})", flush=True)
    entry["cache_mb"] = round(sum(f.stat().st_size for f in cache_dir.glob("*")) / 1e6, 1)
    if not keep_cache:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return entry


def table(results: list[dict[str, Any]]) -> str:
    """The Markdown table of the README's data section."""
    lines = ["| rows | users | load s | sample builder s | preprocess s | s per M rows | peak GB | first batch s "
             "(peak GB) | cache MB | warm start s |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        cold, warm = r["cold"], r["warm"]
        s = cold["seconds"]
        preprocess = s["task"] - s.get("cache_write", 0.0)
        lines.append(
            f"| {r['rows'] / 1e6:g}M | {cold['users']:,} | {s.get('hash', 0) + s['load']:.1f} | {s['build']:.1f} | "
            f"{preprocess:.1f} | {preprocess / (r['rows'] / 1e6):.2f} | {cold['peak_gb_after']['task']:.2f} | "
            f"{s['first_batch']:.1f} ({cold['peak_gb']:.2f}) | {r['cache_mb']:,.0f} | "
            f"{warm['seconds']['task']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolkit.data.scale", description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000, 25_000_000],
                        help="sizes to measure, each in a fresh process")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/duet-scale"),
                        help="where the synthetic files (generated when missing) and the caches go")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON file of results to write")
    parser.add_argument("--keep-cache", action="store_true", help="keep each size's cache directory")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # internal: measure this file, print JSON
    parser.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure_child(args.child, args.cache_dir)))
        return 0
    args.data_dir.mkdir(parents=True, exist_ok=True)
    results = [measure(rows, args.data_dir, args.keep_cache) for rows in args.rows]
    report = {
        "what": "cli.py train --data FILE --format ml-latest (all users) up to its first training step, on synthetic "
                "ML-25M-shaped files (toolkit.data.synthetic); cold = empty cache, warm = the cache cold wrote",
        "command": "python -m toolkit.data.scale " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                    "pandas": __import__("pandas").__version__, "platform": platform.platform()},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
