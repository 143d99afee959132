"""The service benchmark: generate with micro-batching, generate without it, and the static HTTP floor, in one run.

Two servers run side by side on loopback (`python -m toolkit.service`, one with the static floor, one without
batching); the idle one costs nothing while the other is measured. Each measurement is a closed-loop load test of
the same size and concurrency, with the bodies of the run's test devices (round-robin); with `tls` both servers
speak https (a throwaway certificate) and the load test speaks TLS, with `rate_limit` the per-key token bucket is
on. The connection layer's limits are always on, at `cli.py serve`'s defaults. The load generator shares the
machine with the servers, so the ratios measured in one run mean more than the absolute figures.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from toolkit.protocol import routes
from toolkit.data.cache import cache_dir as resolve_cache_dir
from toolkit.errors import ConfigError
from toolkit.options import check_ranges, option
from toolkit.protocol.wire import BODY_FORMATS
from toolkit.service.loadtest import LoadTestConfig, run_load, summary
from toolkit.service.config import ServiceConfig
from toolkit.protocol.tls import throwaway_tls_files, tls_context

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run."""

    run_dir: str  # the run whose generator is served
    exports_dir: str  # its export directory
    requests: int = option(20_000, "Requests per measurement.", minimum=1, maximum=1_000_000)
    concurrency: int = option(64, "Simultaneous connections per measurement.", minimum=1, maximum=1024)
    warmup: int = option(1_000, "Untimed requests sent to each server first.", minimum=1, maximum=1_000_000)
    rounds: int = option(1, "Measure all three this many times, in rotated order; the median round is reported too.",
                         minimum=1, maximum=1000)
    workers: int = option(1, "Server processes per server.", minimum=1, maximum=256)
    max_devices: int = option(2_000, "Test devices whose bodies are sent (round-robin).", minimum=1,
                              maximum=10_000_000)
    body_format: str = option("json", "Request bodies of all three measurements: JSON or the compact binary form.",
                              choices=BODY_FORMATS)
    tls: bool = option(False, "Serve https:// (a throwaway CA and certificate) and load-test over TLS.")
    rate_limit: float = option(0.0, "The servers' per-key rate limit (0 = off); one above the offered load keeps the "
                                    "token bucket checked on every request without refusing any.", minimum=0,
                               maximum=1e9)
    cache_dir: str = ""  # preprocessed-data cache ("": toolkit.data.cache's default)

    def __post_init__(self) -> None:
        check_ranges(self, "benchmark settings")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def device_bodies(run_dir: str, cache_dir: str, max_devices: int) -> list[bytes]:
    """Generate bodies of the run's test devices, as JSON bytes."""
    from toolkit.training.runs import load_run

    run = load_run(run_dir, resolve_cache_dir(cache_dir))
    devices = run.task.devices("test")[:max_devices]
    if not len(devices):
        raise ConfigError(f"{run_dir} has no test devices to build request bodies from")
    return [json.dumps(run.task.example_request(int(d)), separators=(",", ":")).encode() for d in devices]


class _Server:
    """`python -m toolkit.service` in its own process group on a free loopback port: the benchmark's settings
    (no rate limit, no OpenAPI examples, one PyTorch thread per worker) with `overrides`."""

    def __init__(self, cfg: BenchConfig, keys: Path, overrides: dict, scratch: Path, name: str):
        self.port = _free_port()
        self.url = f"{'https' if cfg.tls else 'http'}://127.0.0.1:{self.port}"
        self.log = scratch / f"{name}.log"
        self.ca_file = str(scratch / "ca.pem") if cfg.tls else ""
        config = ServiceConfig(run_dir=str(Path(cfg.run_dir).resolve()),
                               exports_dir=str(Path(cfg.exports_dir).resolve()), api_keys=str(keys),
                               cache_dir=str(resolve_cache_dir(cfg.cache_dir)), rate_limit=cfg.rate_limit,
                               rate_burst=max(100, int(min(cfg.rate_limit, 1e9))), examples=0, torch_threads=1,
                               **overrides)
        command = [sys.executable, "-m", "toolkit.service", "--config", str(config.write(scratch / f"{name}.json")),
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(cfg.workers)]
        if cfg.tls:
            command += ["--ssl-certfile", str(scratch / "cert.pem"), "--ssl-keyfile", str(scratch / "key.pem")]
        here = str(Path(__file__).resolve().parents[2])  # the servers run this toolkit, whatever else is installed
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (here, os.environ.get("PYTHONPATH"))))}
        with self.log.open("w") as handle:
            self.process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                                            env=env)

    def wait_ready(self, workers: int, timeout: float = 300.0) -> None:
        """Until `workers` different processes have answered /healthz (a worker still loading would otherwise
        leave the first one to take the whole load test, and the machine busy with the loading)."""
        import httpx

        deadline, seen = time.monotonic() + timeout, set()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ConfigError(f"the benchmark server exited: {self.log.read_text()[-2000:]}")
            try:
                answer = httpx.get(self.url + routes.HEALTH, timeout=2,  # a new connection each time
                                   verify=tls_context(self.ca_file))
                if answer.status_code == 200:
                    seen.add(answer.json()["worker"])
                    if len(seen) >= workers:
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.2 if seen else 0.5)
        raise ConfigError(f"the benchmark server did not start {workers} workers within {timeout:.0f} s")

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the server's processes have used so far: the server and its live workers, from
        /proc (None where there is no /proc)."""
        tick = os.sysconf("SC_CLK_TCK")
        total, pending, seen = 0.0, [self.process.pid], set()
        try:
            while pending:
                pid = pending.pop()
                if pid in seen:
                    continue
                seen.add(pid)
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            return None
        return total

    def metrics(self) -> str:
        import httpx

        return httpx.get(self.url + routes.METRICS, timeout=10, verify=tls_context(self.ca_file)).text

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def _mean_batch(metrics_text: str) -> float | None:
    values = {}
    for line in metrics_text.splitlines():
        for name in ("duet_generate_batch_size_sum", "duet_generate_batch_size_count"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    count = values.get("duet_generate_batch_size_count", 0.0)
    return round(values["duet_generate_batch_size_sum"] / count, 2) if count else None


def run_benchmark(cfg: BenchConfig, out_file: Path | None = None) -> dict:
    """Every round's three measurements and their ratios, and the median round (also written to `out_file` as
    JSON, when given); a non-200 answer is an error."""
    from toolkit.service.auth import key_line, new_key

    bodies = device_bodies(cfg.run_dir, cfg.cache_dir, cfg.max_devices)
    key = new_key()
    with tempfile.TemporaryDirectory(prefix="duet-bench-") as scratch:
        keys = Path(scratch) / "keys.txt"
        keys.write_text(key_line(key, "bench") + "\n")
        if cfg.tls:
            throwaway_tls_files(Path(scratch))
        batched = _Server(cfg, keys, {"static_floor": True}, Path(scratch), "batched")
        unbatched = _Server(cfg, keys, {"batching": False}, Path(scratch), "unbatched")
        try:
            batched.wait_ready(cfg.workers)
            unbatched.wait_ready(cfg.workers)
            plan = [("static_floor", batched, routes.STATIC_FLOOR), ("generate", batched, routes.GENERATE),
                    ("generate_no_batching", unbatched, routes.GENERATE)]

            def load(url: str, requests: int) -> dict:
                config = LoadTestConfig(url, key, cfg.concurrency, requests, body_format=cfg.body_format,
                                        ca_file=batched.ca_file)
                return asyncio.run(run_load(config, bodies))

            for _, server, path in plan:
                load(server.url + path, cfg.warmup)
            load_before = os.getloadavg()
            rounds = []
            for number in range(cfg.rounds):
                measured = {}
                for name, server, path in plan[number % 3:] + plan[: number % 3]:
                    busy = server.cpu_seconds()
                    result = load(server.url + path, cfg.requests)
                    measured[name] = {**summary(result), "statuses": result["statuses"], "seconds": result["seconds"],
                                      "server_cpu_us_per_request": _per_request(busy, server.cpu_seconds(),
                                                                                result["requests"])}
                    logger.info("round %d %s: %s", number + 1, name, measured[name])
                rounds.append(_with_ratios(measured))
            load_after = os.getloadavg()
            batch_sizes = {"generate": _mean_batch(batched.metrics()),
                           "generate_no_batching": _mean_batch(unbatched.metrics())}
        finally:
            batched.stop()
            unbatched.stop()
    median = sorted(rounds, key=lambda r: r["generate_vs_floor"] or 0.0)[len(rounds) // 2]
    result = {
        "median_round": median,
        "rounds": rounds,
        "all_ok": all(r[m]["ok"] == r[m]["requests"] == cfg.requests for r in rounds for m in
                      ("static_floor", "generate", "generate_no_batching")),
        "mean_batch_size": batch_sizes,
        "config": asdict(cfg),
        "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in load_after],
                    "note": "servers and load generator share these CPUs with other jobs"},
        "bodies": len(bodies),
    }
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _per_request(before: float | None, after: float | None, requests: int) -> float | None:
    """Server CPU µs per request between two `cpu_seconds` readings; None where either could not be read."""
    if before is None or after is None or not requests:
        return None
    return round((after - before) / requests * 1e6, 1)


def _with_ratios(measured: dict) -> dict:
    """The round's ratios; `generate_vs_floor_cpu` is the same ratio from the servers' CPU time per request, which
    other jobs on the machine move far less than throughput (they take cores, not the server's work)."""
    floor, gen, off = (measured[k]["throughput_rps"] for k in ("static_floor", "generate", "generate_no_batching"))
    floor_cpu, gen_cpu = (measured[k]["server_cpu_us_per_request"] for k in ("static_floor", "generate"))
    return {**measured, "generate_vs_floor": round(gen / floor, 3) if floor else None,
            "generate_vs_floor_cpu": round(floor_cpu / gen_cpu, 3) if floor_cpu and gen_cpu else None,
            "batching_speedup": round(gen / off, 2) if off else None}
