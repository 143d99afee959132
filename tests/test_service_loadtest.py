"""The load test command against a live loopback server: one JSON object, nothing lost, loopback only; and the
service benchmark, whose servers start from any working directory."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from service_fixtures import CACHE, KEY

from cli import cli
from toolkit.errors import ConfigError
from toolkit.service.loadtest import LoadTestConfig, bodies_from_file, load_test, loopback_target


def test_loadtest_prints_one_json_object_and_loses_nothing(svc_server):
    result = CliRunner().invoke(cli, ["loadtest", "--url", svc_server, "--api-key", KEY, "--concurrency", "8",
                                      "--requests", "300"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert list(summary) == ["requests", "ok", "errors", "throughput_rps", "p50_ms", "p95_ms", "p99_ms"]
    assert summary["requests"] == summary["ok"] == 300 and summary["errors"] == 0
    assert 0 < summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"]


def test_loadtest_counts_refusals_as_errors(svc_server, tmp_path):
    bodies = tmp_path / "bodies.jsonl"
    bodies.write_text('{"device_id": "1", "items": [1], "timestamps": [1]}\n\n{"device_id": "2", "items": [0]}\n')
    result = CliRunner().invoke(cli, ["loadtest", "--url", svc_server, "--api-key", KEY, "--concurrency", "4",
                                      "--requests", "40", "--bodies", str(bodies)])
    assert json.loads(result.output)["ok"] == 20 and json.loads(result.output)["errors"] == 20
    detail = load_test(LoadTestConfig(svc_server, KEY, concurrency=4, requests=40), bodies_from_file(bodies))
    assert detail["statuses"] == {"200": 20, "422": 20}
    wrong_key = load_test(LoadTestConfig(svc_server, "duet_wrong", concurrency=2, requests=10))  # OpenAPI examples
    assert wrong_key["errors"] == 10 and wrong_key["statuses"] == {"401": 10}


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://example.com", "https://example.com",
                                 "ftp://127.0.0.1:8000", "http://192.168.1.5"])
def test_loadtest_targets_loopback_only(url):
    with pytest.raises(ConfigError, match="loopback"):
        loopback_target(url)
    result = CliRunner().invoke(cli, ["loadtest", "--url", url, "--api-key", KEY, "--requests", "10"])
    assert result.exit_code == 2 and "loopback" in result.output
    assert loopback_target("https://127.0.0.1:8443").tls and not loopback_target("http://127.0.0.1:8000").tls


def test_loadtest_is_bounded():
    assert loopback_target("http://localhost:9").path == "/v1/generate"
    assert loopback_target("http://[::1]:9/v1/static", "dtype=float16").path == "/v1/static?dtype=float16"
    with pytest.raises(ConfigError, match="requests must be"):
        load_test(LoadTestConfig("http://127.0.0.1:9", KEY, requests=10_000_000), [b"{}"])
    with pytest.raises(ConfigError, match="concurrency must be"):
        load_test(LoadTestConfig("http://127.0.0.1:9", KEY, concurrency=100_000), [b"{}"])


def test_the_benchmark_measures_its_three_endpoints_on_servers_it_starts_from_any_directory(svc_run, svc_export,
                                                                                              tmp_path, monkeypatch):
    """Over TLS with the rate limit on (what the README's figures are measured with)."""
    from toolkit.service.bench import BenchConfig, run_benchmark

    monkeypatch.chdir(tmp_path)  # the servers are `python -m toolkit.service`: no path relative to here
    result = run_benchmark(BenchConfig(str(svc_run), str(svc_export), requests=60, concurrency=4, warmup=10,
                                       max_devices=8, cache_dir=str(CACHE), tls=True, rate_limit=1e6))
    assert result["all_ok"] and result["bodies"] == 8
    round_ = result["median_round"]
    assert {round_[name]["statuses"]["200"] for name in ("static_floor", "generate", "generate_no_batching")} == {60}
    assert result["mean_batch_size"]["generate_no_batching"] == 1.0  # the second server runs without batching
    assert round_["generate_vs_floor"] > 0 and round_["batching_speedup"] > 0


def test_the_server_entry_names_an_unreadable_config_and_exits_1(tmp_path):
    missing = tmp_path / "service.json"
    done = subprocess.run([sys.executable, "-m", "toolkit.service", "--config", str(missing)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and f"{missing}: cannot read the service config" in done.stderr


def test_cpu_time_per_request_is_none_where_a_reading_is_missing():
    from toolkit.service.bench import _per_request

    assert _per_request(1.0, 1.5, 1000) == 500.0
    assert _per_request(None, 1.5, 1000) is None and _per_request(1.0, None, 1000) is None  # no /proc, or it raced
    assert _per_request(1.0, 1.5, 0) is None
