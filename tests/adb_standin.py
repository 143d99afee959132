"""A stand-in for Android's `adb` in the tests (there is no phone here): it records every call and answers like adb.

It appends each call's arguments to $ADB_STANDIN/calls.jsonl and keeps pushed files under $ADB_STANDIN/phone/. It
answers `devices` from $ADB_STANDIN/devices.txt; `am start` with $ADB_STANDIN/am_start.txt when the test wrote one
(else a fresh launch: "Status: ok"); the app's results file (`run-as io.duet.demo cat ...`) only after `am start`
and only on the second poll (the app is still working on the first), from $ADB_STANDIN/results.json (no such file:
the app never writes one); `pidof io.duet.demo` as alive for the first $ADB_STANDIN/alive_polls result polls (all,
when absent), then as gone; and the output of a pushed executor_runner or benchmark_model from
$ADB_STANDIN/<tool>.txt. What it returns is recorded input of the test, not anything a phone measured.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

STATE = Path(os.environ["ADB_STANDIN"])
PHONE = STATE / "phone"


def answer(args: list[str]) -> int:
    if args == ["devices"]:
        print("List of devices attached")
        devices = STATE / "devices.txt"
        print(devices.read_text() if devices.exists() else "", end="")
        return 0
    if len(args) < 3 or args[0] != "-s":
        print(f"adb stand-in: unexpected arguments {args}", file=sys.stderr)
        return 1
    command = args[2:]
    if command[0] == "push":
        local, remote = command[1], command[2]
        if not Path(local).is_file():
            print(f"adb: error: cannot stat '{local}': No such file or directory", file=sys.stderr)
            return 1
        target = PHONE / remote.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)
        print(f"{local}: 1 file pushed, 0 skipped.")
        return 0
    if command[0] != "shell":
        return 1
    line = command[1]
    if line.startswith("am start"):
        (STATE / "started").write_text(line)
        custom = STATE / "am_start.txt"
        print(custom.read_text() if custom.exists() else
              "Starting: Intent { cmp=io.duet.demo/.BenchmarkActivity (has extras) }\nStatus: ok\nLaunchState: COLD\n"
              "Activity: io.duet.demo/.BenchmarkActivity\nTotalTime: 412\nWaitTime: 415\nComplete")
        return 0
    if line.startswith("run-as io.duet.demo cat "):
        count = _bump("polls")
        results = STATE / "results.json"
        if not (STATE / "started").exists() or count < 2 or not results.exists():
            print("cat: files/benchmark_results.json: No such file or directory", file=sys.stderr)
            return 1
        print(results.read_text())
        return 0
    if line == "pidof io.duet.demo":
        alive = STATE / "alive_polls"
        if alive.exists() and int((STATE / "polls").read_text()) > int(alive.read_text()):
            return 1  # toybox pidof: nothing printed, exit 1
        print("12345")
        return 0
    for tool in ("executor_runner", "benchmark_model"):
        if tool in line.split()[0]:
            print((STATE / f"{tool}.txt").read_text())
            return 0
    if line.startswith("getprop"):
        print({"ro.product.brand": "google", "ro.product.model": "Pixel 8", "ro.product.cpu.abi": "arm64-v8a",
               "ro.build.version.release": "15"}.get(line.split()[-1], ""))
        return 0
    if line == "cat /proc/meminfo":
        print("MemTotal:        7800000 kB\nMemAvailable:    3000000 kB")
        return 0
    return 0  # mkdir -p, chmod +x, run-as ... rm -f


def _bump(name: str) -> int:
    counter = STATE / name
    count = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(count))
    return count


def main(args: list[str]) -> int:
    with (STATE / "calls.jsonl").open("a") as log:
        log.write(json.dumps(args) + "\n")
    return answer(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
