"""Service settings: one frozen dataclass, passed to worker processes as a JSON file named by an environment variable."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from toolkit.errors import ConfigError
from toolkit.options import option

CONFIG_ENV = "DUET_SERVICE_CONFIG"  # path of the JSON file a worker process reads its settings from


@dataclass(frozen=True)
class ServiceConfig:
    """Everything one service process needs; every worker of `--workers N` gets the same."""

    run_dir: str  # run directory (config.json, weights) whose generator writes the slots
    exports_dir: str  # export directory: manifest.json and the artifacts it lists
    api_keys: str  # keys file: one "sha256:<64 hex> [name]" line per key (see toolkit.service.auth)
    cache_dir: str = ""  # preprocessed-data cache the task reads when the run is loaded ("": toolkit.data.cache's default)
    batching: bool = option(True, "Micro-batch concurrent generate requests into one generator forward.")
    batch_window_ms: float = option(2.0, "Longest a generate request waits, from its arrival, for others to share "
                                         "its forward.")
    max_batch: int = option(64, "Most generate requests in one generator forward.")
    queue_size: int = option(1024, "Most generate requests admitted and not yet answered per process; beyond it "
                                   "503 + Retry-After.")
    rate_limit: float = option(50.0, "Requests per second per API key and process (token bucket; 0 = off, e.g. for "
                                     "load tests).")
    rate_burst: int = option(100, "Requests a key may send at once.")
    auth_failure_rate: float = option(1.0, "Requests without a valid key allowed per second and client address once "
                                           "its burst is spent; then the address gets 429 for every /v1/ call (0 = "
                                           "off, e.g. behind a proxy that hides addresses).")
    auth_failure_burst: int = option(20, "Requests without a valid key an address may send before it is held off.")
    max_body_bytes: int = option(1 << 20, "Largest request body accepted (413 beyond it).")
    examples: int = option(4, "Test devices' example bodies published in /openapi.json (0 = none).")
    static_floor: bool = option(False, "Benchmark only: POST /v1/static answers a fixed blob of generate's size "
                                       "(the HTTP floor).", hidden=True)
    signing_key: str = option("", "Ed25519 private key (PEM) that signs every slot blob; its public key is added to "
                                  "the served manifest (make one with `cli.py keys signing-key`).")
    torch_threads: int = 1  # PyTorch intra-op threads per worker process

    def __post_init__(self) -> None:
        checks = [
            (self.batch_window_ms >= 0, "batch_window_ms must be >= 0"),
            (self.max_batch >= 1, "max_batch must be >= 1"),
            (self.queue_size >= 1, "queue_size must be >= 1"),
            (self.rate_limit >= 0, "rate_limit must be >= 0 (0 turns it off)"),
            (self.rate_burst >= 1, "rate_burst must be >= 1"),
            (self.auth_failure_rate >= 0, "auth_failure_rate must be >= 0 (0 turns the hold-off off)"),
            (self.auth_failure_burst >= 1, "auth_failure_burst must be >= 1"),
            (self.max_body_bytes >= 64, "max_body_bytes must be >= 64"),
            (self.examples >= 0, "examples must be >= 0"),
            (self.torch_threads >= 1, "torch_threads must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"service config: {message}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "ServiceConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise ConfigError(f"service config: unknown fields {unknown}")
        return cls(**obj)

    def write(self, path: Path) -> Path:
        Path(path).write_text(json.dumps(self.to_json(), indent=2))
        return Path(path)

    @classmethod
    def read(cls, path: str | Path, name: str = "") -> "ServiceConfig":
        """The config `write` wrote; ConfigError, starting with `name` (else the path), if it cannot be read."""
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"{name or path}: cannot read the service config ({err})") from err


def config_from_env() -> ServiceConfig:
    """The settings of a worker process: the JSON file named by $DUET_SERVICE_CONFIG."""
    location = os.environ.get(CONFIG_ENV)
    if not location:
        raise ConfigError(f"${CONFIG_ENV} is not set; start the service with `cli.py serve`")
    return ServiceConfig.read(location, f"${CONFIG_ENV}={location}")
