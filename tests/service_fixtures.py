"""Shared pieces of the service and client tests: a tiny trained run, its export, keys, and live servers on loopback.

The fixtures are registered in tests/conftest.py (a fixture imported into several test modules would be a
separate fixture in each, and a session-scoped run would be trained once per module).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from toolkit.protocol.tls import throwaway_tls_files as make_tls_files  # noqa: F401 (the tests' name for it)

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "duet"
KEY, OTHER_KEY = "duet_test-key-one", "duet_test-key-two"


def train_tiny(out: Path) -> Path:
    """A real run on the embedded MovieLens data, 40 users, one epoch (about 10 s)."""
    subprocess.run([sys.executable, str(REPO / "cli.py"), "--threads", "1", "train", "--out", str(out),
                    "--max-users", "40", "--max-epochs", "1", "--cache-dir", str(CACHE)],
                   check=True, cwd=REPO, capture_output=True, text=True)
    return out


def export_tiny(run_dir: Path, out: Path) -> Path:
    """fp32 ExecuTorch and TFLite programs of the run with their manifest, by the real exporters."""
    from toolkit.exporting.contract import ExportOptions
    from toolkit.exporting.transaction import export_run
    from toolkit.training.runs import load_run

    options = ExportOptions(quantize="none", latency_calls=5, max_eval_devices=4)
    export_run(load_run(run_dir, CACHE), ["executorch", "tflite"], options, out)
    return out


def nan_generator_copy(run_dir: Path, dest: Path) -> Path:
    """A copy of a run whose generator writes NaN slots: one weight of its writer is NaN (config and Base intact)."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(run_dir, dest)
    weights = load_file(str(dest / "duet.safetensors"))
    name = next(k for k in sorted(weights) if k.startswith("generator.") and weights[k].dtype == torch.float32)
    weights[name].view(-1)[0] = float("nan")
    save_file(weights, str(dest / "duet.safetensors"))
    return dest


@pytest.fixture(scope="session")
def svc_run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("svc") / "run")


@pytest.fixture(scope="session")
def svc_export(svc_run, tmp_path_factory) -> Path:
    return export_tiny(svc_run, tmp_path_factory.mktemp("svc") / "export")


@pytest.fixture(scope="session")
def svc_keys(tmp_path_factory) -> Path:
    from toolkit.service.auth import key_line

    path = tmp_path_factory.mktemp("keys") / "keys.txt"
    path.write_text(f"# test keys\n{key_line(KEY, 'phones')}\n{key_line(OTHER_KEY, 'lab')}\n")
    return path


@pytest.fixture(scope="session")
def svc_config(svc_run, svc_export, svc_keys):
    from toolkit.service.config import ServiceConfig

    return ServiceConfig(run_dir=str(svc_run), exports_dir=str(svc_export), api_keys=str(svc_keys),
                         cache_dir=str(CACHE), rate_limit=0, max_body_bytes=8192, static_floor=True,
                         auth_failure_rate=0)  # fuzzing sends wrong keys on purpose; the hold-off has its own test


@contextmanager
def live_server(config, server_options=None, **overrides):
    """The app on a real uvicorn server in a thread, on a free 127.0.0.1 port; yields its base URL.

    The server is configured as `cli.py serve` configures it (ServerOptions: the bounded connection layer)."""
    import uvicorn

    from toolkit.service.app import create_app
    from toolkit.service.server import ServerOptions

    config = replace(config, **overrides)
    app = create_app(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server((server_options or ServerOptions()).uvicorn_config(app, config.max_body_bytes))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture(scope="module")
def svc_server(svc_config):
    """One server for a test module: rate limit and failed-login hold-off off, 8 KiB body limit, static floor on."""
    with live_server(svc_config) as url:
        yield url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_cli_serve(svc_run: Path, svc_export: Path, svc_keys: Path, port: int, *options: str,
                    ca_file: str = "") -> tuple[subprocess.Popen, str]:
    """`cli.py --threads 1 serve` (rate limit off) in its own process group, as a user starts it, once it answers
    /healthz; returns the process and the base URL."""
    import httpx

    from toolkit.protocol.tls import tls_context

    process = subprocess.Popen(
        [sys.executable, str(REPO / "cli.py"), "--threads", "1", "serve", str(svc_run), "--exports", str(svc_export), "--api-keys",
         str(svc_keys), "--host", "127.0.0.1", "--port", str(port), "--rate-limit", "0", "--cache-dir", str(CACHE),
         *options], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url = f"{'https' if ca_file else 'http'}://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"cli.py serve exited: {process.stdout.read()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1, verify=tls_context(ca_file)).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("cli.py serve did not answer /healthz within 120 s")
        time.sleep(0.3)


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
