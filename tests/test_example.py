"""The worked example (examples/), on tiny settings, as its docstring runs it: train, evaluate, export to the three
runtimes; then `cli.py serve` finds its task by the import path the run recorded, and a device fetches its slots."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from service_fixtures import free_port, start_cli_serve

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import personalize_digits
        folder = tmp_path_factory.mktemp("example")
        summary = personalize_digits.main(["--out", str(folder / "run"), "--exports", str(folder / "exports"),
                                           "--devices", "6", "--epochs", "1", "--latency-calls", "5"])
        yield folder, summary
    finally:
        sys.path.remove(str(EXAMPLES))


def test_the_example_trains_evaluates_and_exports_a_model_the_toolkit_never_saw(example):
    _, summary = example
    assert set(summary["accuracy"]) == {"base", "finetune", "duet"}
    assert all(0 < value <= 1 for value in summary["accuracy"].values())
    assert set(summary["runtimes"]) == {"executorch", "tflite", "coreml"}
    for name, runtime in summary["runtimes"].items():
        assert runtime["accuracy"] == pytest.approx(summary["accuracy"]["duet"], abs=0.005), name


def test_the_example_run_is_served_and_a_device_gets_its_conv_slots(example, tmp_path):
    import toolkit as duet
    from digits_devices import DigitsDevices

    folder, _ = example
    keys = tmp_path / "keys.txt"
    key = subprocess.run([sys.executable, str(REPO / "cli.py"), "keys", "add", "--file", str(keys)], check=True,
                         capture_output=True, text=True).stdout.strip()
    server, url = start_cli_serve(folder / "run", folder / "exports", keys, free_port())
    try:
        task = DigitsDevices(devices_per_split=6)
        with duet.ServiceClient(url, key) as service:
            device = duet.DeviceClient(service, "executorch", tmp_path / "phone")
            device.setup()
            slots = device.refresh(task.example_request(0))
        assert slots["mix.weight"].shape == (16, 16, 3, 3) and slots["norm.bias"].shape == (16,)
        assert not np.allclose(slots["mix.weight"], device.base_slots["mix.weight"])  # this device's, not Base's
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
