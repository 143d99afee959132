"""Runs a command beside a real `cli.py serve` on 127.0.0.1, with the Python client's answers as the reference.

    python tests/live_service.py -- bash android_demo/core/test.sh        # make android-core-test
    python tests/live_service.py -- swift test --disable-swift-testing --package-path ios_demo/DuetKit

Trains a tiny run on the embedded MovieLens data, exports it (TFLite and Core ML, fp32), starts the service
with a fresh API key, asks it with `toolkit.client` for Base's slots and two test devices' slots, and writes
DIR/live.json and the decoded slots (float32, little-endian, manifest order: `toolkit.protocol.slots.pack_flat`), and
starts tests/faulty_service.py beside it (live.json "faulty": the failures a real server never produces). The
command runs with DUET_LIVE_DIR=DIR, DUET_REQUIRE_LIVE=1 (its live tests must run, not skip) and
DUET_GOLDEN_DIR=tests/golden; its exit status is this script's. The server is stopped whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
sys.path[:0] = [str(REPO), str(TESTS)]

from faulty_service import MODES, FaultyService  # noqa: E402
from service_fixtures import CACHE, free_port, start_cli_serve, train_tiny  # noqa: E402

TARGETS = ("tflite", "coreml")
API_KEY, WRONG_KEY = "duet_live-test-key", "duet_not-a-key"


def prepare(workdir: Path) -> tuple[Path, Path, Path]:
    """A tiny run, its fp32 export and a keys file under workdir (reused when already there)."""
    from toolkit.exporting.contract import ExportOptions
    from toolkit.exporting.transaction import export_run
    from toolkit.training.runs import load_run
    from toolkit.service.auth import key_line

    run_dir, export_dir, keys = workdir / "run", workdir / "export", workdir / "keys.txt"
    if not (run_dir / "config.json").exists():
        print("live_service: training a tiny run (40 users, 1 epoch)", flush=True)
        train_tiny(run_dir)
    if not (export_dir / "manifest.json").exists():
        print(f"live_service: exporting it to {', '.join(TARGETS)}", flush=True)
        options = ExportOptions(quantize="none", latency_calls=5, max_eval_devices=4)
        export_run(load_run(run_dir, CACHE), list(TARGETS), options, export_dir)
    keys.write_text(key_line(API_KEY, "mobile-tests") + "\n")
    return run_dir, export_dir, keys


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def faulty_stand_in(url: str) -> FaultyService:
    """The misbehaving stand-in (tests/faulty_service.py), fed with the real service's manifest, Base's slot blob
    and program files."""
    import httpx

    headers = {"Authorization": f"Bearer {API_KEY}"}
    manifest = httpx.get(f"{url}/v1/manifest", headers=headers).content
    blob = httpx.get(f"{url}/v1/slots/base", headers=headers).content
    artifacts = {t: httpx.get(f"{url}/v1/artifacts/{t}", headers=headers, timeout=60).content
                 for t in json.loads(manifest)["targets"]}
    return FaultyService(manifest, blob, artifacts)


def write_reference(url: str, run_dir: Path, live_dir: Path, faulty_url: str = "") -> dict:
    """What the Python client receives for Base and two test devices: live.json and the flat slot files."""
    from toolkit.client import ServiceClient, check_answer
    from toolkit.protocol.manifest import slot_specs_of
    from toolkit.training.runs import load_run
    from toolkit.protocol.slots import pack_flat

    run = load_run(run_dir, CACHE)
    devices = [int(d) for d in run.task.devices("test")[:2]]
    with ServiceClient(url, API_KEY) as service:
        manifest = service.manifest()
        specs = slot_specs_of(manifest)

        def reference(answer, name: str) -> dict:
            (live_dir / name).write_bytes(pack_flat(specs, check_answer(answer, manifest)))
            return {"flat": name, "blob_sha256": answer.sha256}

        live = {"url": url, "api_key": API_KEY, "wrong_key": WRONG_KEY, "target": TARGETS[0],
                "model_version": manifest["model_version"], "faulty": {"url": faulty_url, "modes": list(MODES)},
                "base": reference(service.base_slots(), "base.flat"), "devices": []}
        for i, device in enumerate(devices):
            body = run.task.example_request(device)
            live["devices"].append({"body": body, **reference(service.generate(body), f"device-{i}.flat")})
    if live["devices"][0]["blob_sha256"] == live["devices"][1]["blob_sha256"]:
        raise RuntimeError("the two reference devices got the same slots: pick devices with other histories")
    (live_dir / "live.json").write_text(json.dumps(live, indent=1))
    return live


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="keep the tiny run and export here (default: a temp dir)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    with tempfile.TemporaryDirectory(prefix="duet-live-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        live_dir = Path(tmp) / "live"
        live_dir.mkdir()
        process, url = start_cli_serve(*prepare(workdir), free_port())
        try:
            with faulty_stand_in(url) as faulty_url:
                write_reference(url, workdir / "run", live_dir, faulty_url)
                env = {**os.environ, "DUET_LIVE_DIR": str(live_dir), "DUET_REQUIRE_LIVE": "1",
                       "DUET_GOLDEN_DIR": str(TESTS / "golden")}
                print(f"live_service: {url} is up (faulty stand-in {faulty_url}); running {' '.join(command)}",
                      flush=True)
                return subprocess.run(command, cwd=REPO, env=env).returncode
        finally:
            stop(process)


if __name__ == "__main__":
    sys.exit(main())
