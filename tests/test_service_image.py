"""The same service, client and load test carry the image task: nothing in them knows about recommendation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from service_fixtures import CACHE, KEY, REPO, auth, live_server

from toolkit.exporting.program import DeviceProgram
from toolkit.client import DeviceClient, ServiceClient
from toolkit.errors import ServiceError
from toolkit.training.serving import ServingPrograms
from toolkit.service.loadtest import LoadTestConfig, load_test
from toolkit.training.runs import load_run


@pytest.fixture(scope="module")
def image_export(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny image run (30 simulated training devices, one epoch) and its fp32 TFLite export."""
    from toolkit.exporting.contract import ExportOptions
    from toolkit.exporting.transaction import export_run

    base = tmp_path_factory.mktemp("image")
    subprocess.run([sys.executable, str(REPO / "cli.py"), "--threads", "1", "train", "--task", "image", "--out",
                    str(base / "run"), "--max-epochs", "1", "--train-devices", "30", "--test-devices", "6",
                    "--cache-dir", str(CACHE)], check=True, cwd=REPO, capture_output=True, text=True)
    torch.set_num_threads(1)
    export_run(load_run(base / "run", CACHE), ["tflite"], ExportOptions(quantize="none", latency_calls=5),
               base / "export")
    return base / "run", base / "export"


def test_image_devices_get_their_slots_and_the_runtime_scores_like_pytorch(image_export, svc_keys, tmp_path):
    from toolkit.service.config import ServiceConfig

    run_dir, export_dir = image_export
    run = load_run(run_dir, CACHE)
    shape = json.loads((export_dir / "report.json").read_text())["shape"]
    reference = DeviceProgram.of(run.task, run.duet, shape).eval()
    config = ServiceConfig(run_dir=str(run_dir), exports_dir=str(export_dir), api_keys=str(svc_keys),
                           cache_dir=str(CACHE), rate_limit=0)
    with live_server(config) as url:
        request_schema = httpx.get(f"{url}/openapi.json").json()["components"]["schemas"]["GenerateRequest"]
        assert "images" in request_schema["properties"]
        with ServiceClient(url, KEY) as service:
            device = DeviceClient(service, "tflite", tmp_path)
            device.setup()
            devices = [int(d) for d in run.task.devices("test")[:2]]
            served, programs = {}, ServingPrograms(run)
            for d in devices:
                served[d] = device.refresh(run.task.example_request(d))
                expected = programs.slots_for_device(d, "test")
                calls = [inputs for dd, inputs, _ in run.task.program_calls("test", shape) if dd == d][:3]
                assert calls
                for inputs in calls:
                    got = device.score(inputs)
                    want = reference.run(tuple(torch.from_numpy(np.asarray(x)) for x in inputs), expected)
                    assert float(np.abs(got - want).max()) <= 1e-4
            assert any(not np.allclose(served[devices[0]][k], served[devices[1]][k]) for k in served[devices[0]])
        bad = httpx.post(f"{url}/v1/generate", json={"device_id": "x", "images": [[0.5] * 3]}, headers=auth())
        assert bad.status_code == 422 and "images" in bad.json()["message"]
        with ServiceClient(url, KEY) as service:  # the binary body: images as an (n, 64) F32 tensor, same slots
            body = run.task.example_request(devices[0])
            assert service.generate(body, binary=True).blob == service.generate(body).blob
            with pytest.raises(ServiceError, match=r"is out of range \(valid: 0\.\.1\)"):
                service.generate(dict(body, images=[[2.0] * 64]), binary=True)
        summary = load_test(LoadTestConfig(url, KEY, concurrency=8, requests=100))
        assert summary["ok"] == summary["requests"] == 100
        binary = load_test(LoadTestConfig(url, KEY, concurrency=8, requests=100, body_format="safetensors"))
        assert binary["ok"] == binary["requests"] == 100
