"""The load test command against a live loopback server: one JSON object, nothing lost, loopback only."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from service_fixtures import KEY

from cli import cli
from toolkit.errors import ConfigError
from toolkit.loadtest import LoadTestConfig, bodies_from_file, load_test, loopback_target


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


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://example.com", "https://127.0.0.1:8000",
                                 "http://192.168.1.5"])
def test_loadtest_targets_loopback_only(url):
    with pytest.raises(ConfigError, match="loopback|plain http"):
        loopback_target(url)
    result = CliRunner().invoke(cli, ["loadtest", "--url", url, "--api-key", KEY, "--requests", "10"])
    assert result.exit_code == 2 and ("loopback" in result.output or "plain http" in result.output)


def test_loadtest_is_bounded():
    assert loopback_target("http://localhost:9").path == "/v1/generate"
    assert loopback_target("http://[::1]:9/v1/static", "dtype=float16").path == "/v1/static?dtype=float16"
    with pytest.raises(ConfigError, match="requests must be"):
        load_test(LoadTestConfig("http://127.0.0.1:9", KEY, requests=10_000_000), [b"{}"])
    with pytest.raises(ConfigError, match="concurrency must be"):
        load_test(LoadTestConfig("http://127.0.0.1:9", KEY, concurrency=100_000), [b"{}"])
