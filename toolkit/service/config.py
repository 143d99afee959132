"""Service settings: one frozen dataclass, passed to worker processes as a JSON file named by an environment variable."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from toolkit.artifacts import read_small_file, strict_json
from toolkit.errors import ConfigError, one_line
from toolkit.options import check_ranges, option

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
                                         "its forward.", minimum=0, maximum=10_000)
    max_batch: int = option(64, "Most generate requests in one generator forward.", minimum=1, maximum=65_536)
    queue_size: int = option(1024, "Most generate requests admitted and not yet answered per process; beyond it "
                                   "503 + Retry-After.", minimum=1, maximum=10_000_000)
    rate_limit: float = option(50.0, "Requests per second per API key and process (token bucket; 0 = off, e.g. for "
                                     "load tests).", minimum=0, maximum=1e9)
    rate_burst: int = option(100, "Requests a key may send at once.", minimum=1, maximum=10**9)
    auth_failure_rate: float = option(1.0, "Requests without a valid key allowed per second and client address once "
                                           "its burst is spent; then the address gets 429 for every /v1/ call (0 = "
                                           "off, e.g. behind a proxy that hides addresses).", minimum=0, maximum=1e9)
    auth_failure_burst: int = option(20, "Requests without a valid key an address may send before it is held off.",
                                     minimum=1, maximum=10**9)
    trusted_proxies: str = option("", "Comma-separated addresses or networks (e.g. 10.0.0.5,192.168.0.0/16) of "
                                      "reverse proxies whose X-Forwarded-For names the client; none by default: the "
                                      "client is the connection's peer address.")
    max_body_bytes: int = option(1 << 20, "Largest request body accepted (413 beyond it).", minimum=64,
                                 maximum=1 << 30)
    examples: int = option(4, "Example generate bodies published in /openapi.json, made up in the shape of the first "
                              "test devices' (0 = none).", minimum=0, maximum=100)
    static_floor: bool = option(False, "Benchmark only: POST /v1/static answers a fixed blob of generate's size "
                                       "(the HTTP floor).", hidden=True)
    signing_key: str = option("", "Ed25519 private key (PEM) that signs every slot blob; its public key is added to "
                                  "the served manifest (make one with `cli.py keys signing-key`).")
    torch_threads: int = 1  # PyTorch intra-op threads per worker process

    def __post_init__(self) -> None:
        check_ranges(self, "service config")
        if not self.torch_threads >= 1:
            raise ConfigError("service config: torch_threads must be >= 1")
        proxy_networks(self.trusted_proxies)  # ConfigError for one that is not an address or network

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
            obj = strict_json(read_small_file(Path(path)))
        except (OSError, ValueError, RecursionError) as err:
            raise ConfigError(f"{name or path}: cannot read the service config ({one_line(err, 160)})") from err
        if not isinstance(obj, dict):
            raise ConfigError(f"{name or path}: the service config is a JSON object")
        try:
            return cls.from_json(obj)
        except TypeError as err:
            raise ConfigError(f"{name or path}: cannot read the service config ({err})") from err


def proxy_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The networks of a comma-separated list of addresses and networks (`trusted_proxies`)."""
    networks = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError as err:
            raise ConfigError(f"service config: trusted_proxies: {part[:60]!r} is not an IP address or network "
                              f"({err})") from None
    return tuple(networks)


def config_from_env() -> ServiceConfig:
    """The settings of a worker process: the JSON file named by $DUET_SERVICE_CONFIG."""
    location = os.environ.get(CONFIG_ENV)
    if not location:
        raise ConfigError(f"${CONFIG_ENV} is not set; start the service with `cli.py serve`")
    return ServiceConfig.read(location, f"${CONFIG_ENV}={location}")
